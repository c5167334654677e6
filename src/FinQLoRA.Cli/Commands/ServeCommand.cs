using System.ComponentModel;
using FinQLoRA.Loading;
using FinQLoRA.Server;
using Spectre.Console;
using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

public sealed class ServeSettings : QuantizedModelSettings
{
    [CommandOption("--adapter <NAME=DIR>")]
    [Description("PEFT adapter folder served under NAME (repeatable); requests pick it with \"model\": \"NAME\"; NAME=DIR:pin keeps it on the device")]
    public string[] Adapter { get; set; } = [];

    [CommandOption("--served-model-name <NAME>")]
    [Description("the base model's id in /v1/models and requests (default: the model folder's or file's name)")]
    public string? ServedModelName { get; set; }

    [CommandOption("--host <ADDRESS>")]
    [Description("address to bind; anything but loopback needs --api-key")]
    [DefaultValue("127.0.0.1")]
    public string Host { get; set; } = "127.0.0.1";

    [CommandOption("--port <PORT>")]
    [DefaultValue(8000)]
    public int Port { get; set; } = 8000;

    [CommandOption("--api-key <KEY>")]
    [Description("require 'Authorization: Bearer KEY' on /v1 (default: $FINQLORA_API_KEY)")]
    public string? ApiKey { get; set; }

    [CommandOption("--max-batch <N>")]
    [Description("sequences decoded together (KV-cache slots)")]
    [DefaultValue(32)]
    public int MaxBatch { get; set; } = 32;

    [CommandOption("--max-queue <N>")]
    [Description("requests that may wait for a slot; more get 429")]
    [DefaultValue(256)]
    public int MaxQueue { get; set; } = 256;

    [CommandOption("--max-model-len <N>")]
    [Description("prompt + generated tokens per sequence (default: the model's context, at most 4096)")]
    public int? MaxModelLen { get; set; }

    [CommandOption("--prefix-cache-gib <GIB>")]
    [Description("memory for automatic prefix caching (KV blocks of prompt prefixes reused by later requests); 0 turns it off")]
    [DefaultValue(ServerHostOptions.DefaultPrefixCacheGib)]
    public double PrefixCacheGib { get; set; } = ServerHostOptions.DefaultPrefixCacheGib;

    [CommandOption("--adapter-root <DIR>")]
    [Description("serve every PEFT adapter folder directly under DIR by its folder name, and allow /v1/load_lora_adapter and /v1/unload_lora_adapter for folders under DIR")]
    public string? AdapterRoot { get; set; }

    [CommandOption("--max-loras <N>")]
    [Description("adapters on the compute device at once; others are read on first use and the least recently used idle one leaves")]
    [DefaultValue(FinQLoRA.Serving.EngineOptions.DefaultMaxLoras)]
    public int MaxLoras { get; set; } = FinQLoRA.Serving.EngineOptions.DefaultMaxLoras;

    [CommandOption("--max-cpu-loras <M>")]
    [Description("adapters kept in host memory after leaving the device, so they come back without reading the disk (default: --max-loras)")]
    public int? MaxCpuLoras { get; set; }

    [CommandOption("--shutdown-timeout <SECONDS>")]
    [Description("on Ctrl-C / SIGTERM, how long in-flight requests may take to finish")]
    [DefaultValue(30)]
    public int ShutdownTimeout { get; set; } = 30;

    public override ValidationResult Validate()
    {
        if (MaxBatch < 1) return ValidationResult.Error($"--max-batch must be at least 1 (got {MaxBatch})");
        if (MaxQueue < 0) return ValidationResult.Error($"--max-queue must be at least 0 (got {MaxQueue})");
        if (MaxModelLen is < 2) return ValidationResult.Error($"--max-model-len must be at least 2 (got {MaxModelLen})");
        if (ShutdownTimeout < 0) return ValidationResult.Error($"--shutdown-timeout must be >= 0 (got {ShutdownTimeout})");
        try
        {
            ServerHostOptions.CheckPrefixCacheGib(PrefixCacheGib);
            var adapters = AdapterSpec.Parse(Adapter, allowPin: true);
            int pins = adapters.Count(a => a.Pinned);
            ServerHostOptions.CheckAdapterSlots(MaxLoras, MaxCpuLoras, pins, othersServed: adapters.Count > pins || AdapterRoot is not null);
        }
        catch (UserInputException e) { return ValidationResult.Error(e.Message); }
        return base.Validate();
    }
}

/// <summary><c>finqlora serve</c>: every flag is checked, then the model and adapters load, then the server starts and
/// prints one line. Ctrl-C / SIGTERM: new requests get 503, in-flight ones finish (up to --shutdown-timeout), exit 0.</summary>
public sealed class ServeCommand : AsyncCommand<ServeSettings>
{
    public override async Task<int> ExecuteAsync(CommandContext context, ServeSettings s, CancellationToken cancellationToken)
    {
        string? key = s.ApiKey ?? (Environment.GetEnvironmentVariable("FINQLORA_API_KEY") is { Length: > 0 } env ? env : null);
        string served = s.ServedModelName ?? ModelPath.DisplayNameOf(s.Model);
        var adapters = AdapterSpec.Parse(s.Adapter, allowPin: true);
        var server = new ServerOptions
        {
            ServedModelName = served, Host = s.Host, Port = s.Port, ApiKey = key, AdapterRoot = s.AdapterRoot,
            ShutdownTimeout = TimeSpan.FromSeconds(s.ShutdownTimeout),
        };
        await using var host = ServerHost.Open(new ServerHostOptions
        {
            ModelPath = s.Model, Load = s.QuantizedLoadOptions(), Adapters = adapters.Select(a => (a.Name, a.Dir)).ToList(), Server = server,
            PinnedAdapters = adapters.Where(a => a.Pinned).Select(a => a.Name).ToList(), MaxLoras = s.MaxLoras, MaxCpuLoras = s.MaxCpuLoras,
            MaxBatch = s.MaxBatch, MaxQueue = s.MaxQueue, MaxModelLen = s.MaxModelLen, PrefixCacheGib = s.PrefixCacheGib,
        });
        using var interruption = new Interruption("stopping: new requests get 503 while running ones finish");
        await host.StartAsync(cancellationToken);
        var names = host.Engine.Adapters;
        string loaded = names.Count == 0 ? "no adapters"
            : $"{(names.Count <= 8 ? "adapters " + string.Join(", ", names) : $"{names.Count} adapters")} ({host.Engine.MaxLoras} on the device at once)";
        Console.WriteLine($"finqlora serve: {host.Url} serving '{served}' ({s.Bits}-bit, {s.DType}, {s.Device}) with {loaded}; max batch {host.Engine.Options.MaxBatch}, context {host.Engine.Options.MaxModelLen}, {PrefixCache(host.Engine.PrefixCacheBytes)}, chat format {host.ChatFormat?.Name ?? "none"}{(key is null ? "" : ", API key required")}; Ctrl-C stops");
        using (var stop = CancellationTokenSource.CreateLinkedTokenSource(interruption.Token, cancellationToken))
        {
            try { await Task.Delay(Timeout.Infinite, stop.Token); }
            catch (OperationCanceledException) { }
        }
        bool drained = await host.StopAsync();
        AnsiConsole.MarkupLine(drained ? "[grey]finqlora serve: stopped[/]" : "[yellow]finqlora serve: stopped; requests still running at the deadline were ended[/]");
        return 0;
    }

    private static string PrefixCache(long bytes) => bytes == 0 ? "prefix cache off" : $"prefix cache {bytes / (double)(1L << 30):0.##} GiB";
}
