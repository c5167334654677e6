using System.ComponentModel;
using FinQLoRA.Server.Tenancy;
using Spectre.Console;
using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

public sealed class ServeKeysAddSettings : CommandSettings
{
    [CommandOption("--keys <FILE>")]
    [Description("the keys file of 'finqlora serve --keys' (.yaml, .yml or .json); created when absent")]
    public string Keys { get; set; } = "";

    [CommandOption("--id <ID>")]
    [Description("the key's unique id (letters, digits, '.', '_', '-'): its name in logs, limits and the prompt cache")]
    public string Id { get; set; } = "";

    [CommandOption("--models <NAMES>")]
    [Description("comma-separated served names or globs the key may use ('desk-a-*,llama-3.1-8b'; '*' for all); the base only if listed")]
    public string Models { get; set; } = "";

    [CommandOption("--rpm <N>")]
    [Description("requests per minute (default: unlimited)")]
    public int? Rpm { get; set; }

    [CommandOption("--tpm <N>")]
    [Description("tokens per minute, counted at admission as prompt + max_tokens per choice (default: unlimited)")]
    public int? Tpm { get; set; }

    [CommandOption("--manage-adapters")]
    [Description("the key may call /v1/load_lora_adapter and /v1/unload_lora_adapter (for names it may use)")]
    public bool ManageAdapters { get; set; }

    public override ValidationResult Validate()
    {
        if (RequiredOptions.Missing(("--keys", Keys), ("--id", Id)) is { } missing) return missing;
        if (KeysFile.IdProblem(Id) is { } bad) return ValidationResult.Error($"--id {bad}");
        if (Models == "") return ValidationResult.Error("--models is required: the served names or globs the key may use, e.g. --models 'desk-a-*' ('*' for all)");
        if (Rpm is < 1) return ValidationResult.Error($"--rpm must be at least 1 (got {Rpm}); leave it out for no limit");
        if (Tpm is < 1) return ValidationResult.Error($"--tpm must be at least 1 (got {Tpm}); leave it out for no limit");
        try { Grant(); }
        catch (ArgumentException e) { return ValidationResult.Error($"--models {Models}: {e.Message}"); }
        return ValidationResult.Success();
    }

    internal ModelGrant Grant() => ModelGrant.Of(Models.Split(',', StringSplitOptions.TrimEntries));
}

/// <summary><c>finqlora serve-keys add</c>: a new random key, printed once on stdout; only its SHA-256 is written to the
/// keys file (created, or added to atomically; a duplicate id is refused).</summary>
public sealed class ServeKeysAddCommand : Command<ServeKeysAddSettings>
{
    public override int Execute(CommandContext context, ServeKeysAddSettings s, CancellationToken cancellationToken)
    {
        string key = ApiKeyHash.NewKey();
        var entry = new TenantKey(s.Id, ApiKeyHash.Of(key), s.Grant())
        {
            RequestsPerMinute = s.Rpm, TokensPerMinute = s.Tpm, CanManageAdapters = s.ManageAdapters,
        };
        KeysFile.Add(s.Keys, entry);
        Console.WriteLine(key);
        Console.Error.WriteLine($"finqlora serve-keys: key '{s.Id}' added to {s.Keys} (its SHA-256 only); the key above is shown this once: keep it now");
        return 0;
    }
}

public sealed class ServeKeysListSettings : CommandSettings
{
    [CommandOption("--keys <FILE>")]
    [Description("the keys file of 'finqlora serve --keys'")]
    public string Keys { get; set; } = "";

    [CommandOption("--json")]
    [Description("one JSON object per key")]
    public bool Json { get; set; }

    public override ValidationResult Validate() => RequiredOptions.Missing(("--keys", Keys)) ?? ValidationResult.Success();
}

/// <summary><c>finqlora serve-keys list</c>: each key's id, models, limits and adapter rights (never its hash); the file
/// is checked as <c>serve --keys</c> checks it.</summary>
public sealed class ServeKeysListCommand : Command<ServeKeysListSettings>
{
    public override int Execute(CommandContext context, ServeKeysListSettings s, CancellationToken cancellationToken)
    {
        foreach (var k in KeysFile.Read(s.Keys))
        {
            if (s.Json)
            {
                var o = new System.Text.Json.Nodes.JsonObject
                {
                    ["id"] = k.Id, ["models"] = new System.Text.Json.Nodes.JsonArray([.. k.Models.Patterns.Select(p => (System.Text.Json.Nodes.JsonNode)p)]),
                    ["requests_per_minute"] = k.RequestsPerMinute, ["tokens_per_minute"] = k.TokensPerMinute, ["can_manage_adapters"] = k.CanManageAdapters,
                };
                Console.WriteLine(o.ToJsonString());
            }
            else
            {
                Console.WriteLine($"{k.Id}\tmodels {k.Models}\trpm {k.RequestsPerMinute?.ToString() ?? "-"}\ttpm {k.TokensPerMinute?.ToString() ?? "-"}{(k.CanManageAdapters ? "\tmanages adapters" : "")}");
            }
        }
        return 0;
    }
}
