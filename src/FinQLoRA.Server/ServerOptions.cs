using System.Net;
using FinQLoRA.Data.Chat;
using FinQLoRA.Server.Audit;
using FinQLoRA.Serving;

namespace FinQLoRA.Server;

/// <summary>How <see cref="OpenAiServer"/> listens and what it allows.</summary>
public sealed record ServerOptions
{
    /// <summary>The id the base model is listed and requested under.</summary>
    public required string ServedModelName { get; init; }
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>0 picks a free port (tests).</summary>
    public int Port { get; init; } = 8000;
    /// <summary>Required as <c>Authorization: Bearer KEY</c> on /v1 when set.</summary>
    public string? ApiKey { get; init; }
    /// <summary>The keys of <c>--keys FILE</c> (<see cref="Tenancy.KeysFile.Read"/>): each with its models, limits and
    /// adapter rights; exclusive with <see cref="ApiKey"/>, which is the one-key case (id "default", every model).</summary>
    public IReadOnlyList<Tenancy.TenantKey>? Keys { get; init; }
    /// <summary>Folder runtime adapters must come from; null disables /v1/load_lora_adapter and /v1/unload_lora_adapter.</summary>
    public string? AdapterRoot { get; init; }
    /// <summary>Largest request body accepted; larger ones get 413.</summary>
    public long MaxBodyBytes { get; init; } = 1 << 20;
    /// <summary>Completions per prompt (<c>n</c>) at most.</summary>
    public int MaxN { get; init; } = 16;
    /// <summary>How long a stop waits for in-flight requests before ending them.</summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>The audit log (<c>--audit-log</c>); null: no audit log.</summary>
    public AuditLogOptions? AuditLog { get; init; }
    /// <summary>The model's chat format; null answers chat requests with 400.</summary>
    public ChatFormat? ChatFormat { get; init; }
    /// <summary>Why there is no <see cref="ChatFormat"/> when the model's template is one we refuse (the 400 says it).</summary>
    public string? ChatFormatRefusal { get; init; }

    /// <summary>Checks everything that can be checked before a model is loaded.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(ServedModelName)) throw new UserInputException("--served-model-name must not be empty");
        if (Port is < 0 or > 65535) throw new UserInputException($"--port {Port} is not in 0..65535");
        if (ApiKey is { Length: 0 }) throw new UserInputException("--api-key must not be empty (omit it to serve without a key on loopback)");
        if (ApiKey is not null && Keys is not null)
            throw new UserInputException("--api-key and --keys are exclusive: give one (--keys FILE holds every key, with its models and limits)");
        if (Keys?.GroupBy(k => k.Id).FirstOrDefault(g => g.Count() > 1) is { } twice)
            throw new UserInputException($"--keys: the id '{twice.Key}' is given to {twice.Count()} keys; ids must be unique");
        if (Keys is { Count: 0 }) throw new UserInputException("--keys: the file holds no keys, so every request would be refused; add one with 'finqlora serve-keys add'");
        if (MaxBodyBytes < 1024) throw new UserInputException($"the body limit must be at least 1024 bytes (got {MaxBodyBytes})");
        if (!IsLoopback(Host) && ApiKey is null && Keys is null)
            throw new UserInputException($"--host {Host} is not a loopback address; serving beyond this machine needs --api-key KEY (or FINQLORA_API_KEY) or --keys FILE");
        if (AdapterRoot is not null && !Directory.Exists(AdapterRoot))
            throw new UserInputException($"--adapter-root {AdapterRoot}: folder not found");
        AuditLog?.Validate();
    }

    /// <summary>The keys a request may present, or null when the server takes requests without a key.</summary>
    public Tenancy.KeyRing? KeyRing() =>
        Keys is { Count: > 0 } keys ? new Tenancy.KeyRing(keys)
        : ApiKey is { } key ? new Tenancy.KeyRing([Tenancy.TenantKey.Default(key)])
        : null;

    public static bool IsLoopback(string host) =>
        host.Equals("localhost", StringComparison.OrdinalIgnoreCase) || (IPAddress.TryParse(host, out var ip) && IPAddress.IsLoopback(ip));

    /// <summary>The address to bind; throws for a host that is neither an IP address nor localhost.</summary>
    public IPAddress BindAddress() =>
        Host.Equals("localhost", StringComparison.OrdinalIgnoreCase) ? IPAddress.Loopback
        : IPAddress.TryParse(Host, out var ip) ? ip
        : throw new UserInputException($"--host '{Host}' is not an IP address (e.g. 127.0.0.1, 0.0.0.0, ::1) or localhost");
}
