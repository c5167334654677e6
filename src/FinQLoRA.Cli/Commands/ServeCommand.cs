using System.ComponentModel;
using System.Runtime.InteropServices;
using FinQLoRA.Distributed;
using FinQLoRA.Serving.Pipeline;
using FinQLoRA.Loading;
using FinQLoRA.Server;
using FinQLoRA.Server.Tenancy;
using FinQLoRA.Server.Audit;
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

    [CommandOption("--keys <FILE>")]
    [Description("API keys as SHA-256 hashes with the models each may use, rate limits and adapter rights (YAML or JSON; see 'finqlora serve-keys add'); exclusive with --api-key")]
    public string? Keys { get; set; }

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
    [Description("memory for automatic prefix caching (KV blocks of prompt prefixes reused by later requests); 0 turns it off (default 1; 0 with --pipeline-stages, which refuses more)")]
    public double? PrefixCacheGib { get; set; }

    [CommandOption("--pipeline-stages <N>")]
    [Description("split the layers over N MPI ranks (run under mpirun -np N or finqlora launch -n N); rank 0 serves HTTP")]
    [DefaultValue(1)]
    public int PipelineStages { get; set; } = 1;

    [CommandOption("--micro-batches <M>")]
    [Description("with --pipeline-stages: micro-batches each step's rows flow through the stages in (default: N)")]
    public int? MicroBatches { get; set; }

    /// <summary>--prefix-cache-gib as given, else its default (off in a pipeline, which does not mirror it).</summary>
    public double PrefixCacheGibOrDefault => PrefixCacheGib ?? (PipelineStages > 1 ? 0 : ServerHostOptions.DefaultPrefixCacheGib);

    [CommandOption("--adapter-root <DIR>")]
    [Description("serve every PEFT adapter folder directly under DIR by its folder name, and allow /v1/load_lora_adapter and /v1/unload_lora_adapter for folders under DIR")]
    public string? AdapterRoot { get; set; }

    [CommandOption("--scheduling-policy <POLICY>")]
    [Description("fcfs (first come, first served; a request's priority must be 0) or priority (lower \"priority\" admitted first, ties by arrival)")]
    [DefaultValue("fcfs")]
    public string SchedulingPolicy { get; set; } = "fcfs";

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

    [CommandOption("--audit-log <FILE>")]
    [Description("append one JSON line per /v1 request (time, key id, request id, endpoint, model, adapter and its sha256, token counts, latency, finish reason, status), written to disk before the next")]
    public string? AuditLog { get; set; }

    [CommandOption("--audit-log-max-mib <N>")]
    [Description("rotate the audit log to FILE.1 (FILE.1 to FILE.2, ...) before it grows past N MiB")]
    [DefaultValue(AuditLogOptions.DefaultMaxMiB)]
    public int AuditLogMaxMiB { get; set; } = AuditLogOptions.DefaultMaxMiB;

    [CommandOption("--audit-log-keep <K>")]
    [Description("rotated audit logs kept (FILE.1 to FILE.K); the oldest beyond them is deleted")]
    [DefaultValue(AuditLogOptions.DefaultKeep)]
    public int AuditLogKeep { get; set; } = AuditLogOptions.DefaultKeep;

    [CommandOption("--audit-content")]
    [Description("audit lines also carry the prompt and completion text (off: counts only)")]
    public bool AuditContent { get; set; }

    public override ValidationResult Validate()
    {
        if (ApiKey is not null && Keys is not null)
            return ValidationResult.Error("--api-key and --keys are exclusive: give one (--keys FILE holds every key, with its models and limits)");
        if (MaxBatch < 1) return ValidationResult.Error($"--max-batch must be at least 1 (got {MaxBatch})");
        if (MaxQueue < 0) return ValidationResult.Error($"--max-queue must be at least 0 (got {MaxQueue})");
        if (MaxModelLen is < 2) return ValidationResult.Error($"--max-model-len must be at least 2 (got {MaxModelLen})");
        if (ShutdownTimeout < 0) return ValidationResult.Error($"--shutdown-timeout must be >= 0 (got {ShutdownTimeout})");
        if (Policy() is null) return ValidationResult.Error($"--scheduling-policy must be fcfs or priority (got '{SchedulingPolicy}')");
        if (AuditLog is null && AuditContent) return ValidationResult.Error("--audit-content needs --audit-log FILE (the file the text would go to)");
        if (AuditLogMaxMiB < 1) return ValidationResult.Error($"--audit-log-max-mib must be at least 1 (got {AuditLogMaxMiB})");
        if (AuditLogKeep < 1) return ValidationResult.Error($"--audit-log-keep must be at least 1 (got {AuditLogKeep}); rotated files are FILE.1 to FILE.K");
        try
        {
            ServerHostOptions.CheckPrefixCacheGib(PrefixCacheGibOrDefault);
            // the job's size is known from the launcher's environment, before MPI starts or anything loads
            ServerHost.CheckPipeline(PipelineStages, MicroBatches, PrefixCacheGibOrDefault, LaunchEnvironment.FromEnvironment().Size);
            var adapters = AdapterSpec.Parse(Adapter, allowPin: true);
            int pins = adapters.Count(a => a.Pinned);
            ServerHostOptions.CheckAdapterSlots(MaxLoras, MaxCpuLoras, pins, othersServed: adapters.Count > pins || AdapterRoot is not null);
        }
        catch (UserInputException e) { return ValidationResult.Error(e.Message); }
        return base.Validate();
    }

    /// <summary>The policy --scheduling-policy names, or null for another word.</summary>
    public FinQLoRA.Serving.SchedulingPolicy? Policy() => SchedulingPolicy switch
    {
        "fcfs" => FinQLoRA.Serving.SchedulingPolicy.Fcfs,
        "priority" => FinQLoRA.Serving.SchedulingPolicy.Priority,
        _ => null,
    };
}

/// <summary><c>finqlora serve</c>: every flag is checked, then the model and adapters load, then the server starts and
/// prints one line. Ctrl-C / SIGTERM: new requests get 503, in-flight ones finish (up to --shutdown-timeout), exit 0.</summary>
public sealed class ServeCommand : AsyncCommand<ServeSettings>
{
    public override async Task<int> ExecuteAsync(CommandContext context, ServeSettings s, CancellationToken cancellationToken)
    {
        // --keys is read and checked in full before the model loads; with it, FINQLORA_API_KEY is not a key
        var keys = s.Keys is { } keysFile ? KeysFile.Read(keysFile) : null;
        string? key = keys is not null ? null : s.ApiKey ?? (Environment.GetEnvironmentVariable("FINQLORA_API_KEY") is { Length: > 0 } env ? env : null);
        string served = s.ServedModelName ?? ModelPath.DisplayNameOf(s.Model);
        var adapters = AdapterSpec.Parse(s.Adapter, allowPin: true);
        var server = new ServerOptions
        {
            ServedModelName = served, Host = s.Host, Port = s.Port, ApiKey = key, Keys = keys, AdapterRoot = s.AdapterRoot,
            ShutdownTimeout = TimeSpan.FromSeconds(s.ShutdownTimeout),
            AuditLog = s.AuditLog is null ? null
                : new AuditLogOptions { Path = s.AuditLog, MaxMiB = s.AuditLogMaxMiB, Keep = s.AuditLogKeep, IncludeContent = s.AuditContent },
        };
        var options = new ServerHostOptions
        {
            ModelPath = s.Model, Load = s.QuantizedLoadOptions(), Adapters = adapters.Select(a => (a.Name, a.Dir)).ToList(), Server = server,
            MaxBatch = s.MaxBatch, MaxQueue = s.MaxQueue, MaxModelLen = s.MaxModelLen, PrefixCacheGib = s.PrefixCacheGibOrDefault,
            PipelineStages = s.PipelineStages, MicroBatches = s.MicroBatches, SchedulingPolicy = s.Policy()!.Value,
            PinnedAdapters = adapters.Where(a => a.Pinned).Select(a => a.Name).ToList(), MaxLoras = s.MaxLoras, MaxCpuLoras = s.MaxCpuLoras,
        };
        using var job = s.PipelineStages > 1 ? DistributedContext.FromEnvironment() : null;
        if (job is { Rank: not 0 })
        {
            RunStage(options, job);
            return 0;
        }
        await using var host = ServerHost.Open(options, job);
        using var interruption = new Interruption("stopping: new requests get 503 while running ones finish");
        await host.StartAsync(cancellationToken);
        var names = host.Engine.Adapters;
        string loaded = names.Count == 0 ? "no adapters"
            : $"{(names.Count <= 8 ? "adapters " + string.Join(", ", names) : $"{names.Count} adapters")} ({host.Engine.MaxLoras} on the device at once)";
        Console.WriteLine($"finqlora serve: {host.Url} serving '{served}' ({s.Bits}-bit, {s.DType}, {s.Device}) with {loaded}; max batch {host.Engine.Options.MaxBatch}, context {host.Engine.Options.MaxModelLen}, {PrefixCache(host.Engine.PrefixCacheBytes)}, chat format {host.ChatFormat?.Name ?? "none"}{(keys is not null ? $", {keys.Count} API keys ({s.Keys})" : key is null ? "" : ", API key required")}{(s.AuditLog is null ? "" : $", audit log {s.AuditLog}")}; Ctrl-C stops");
        using (var stop = CancellationTokenSource.CreateLinkedTokenSource(interruption.Token, cancellationToken))
        {
            try { await Task.Delay(Timeout.Infinite, stop.Token); }
            catch (OperationCanceledException) { }
        }
        bool drained = await host.StopAsync();
        AnsiConsole.MarkupLine(drained ? "[grey]finqlora serve: stopped[/]" : "[yellow]finqlora serve: stopped; requests still running at the deadline were ended[/]");
        return 0;
    }

    /// <summary>Ranks 1..N−1: this rank's layers and their adapters, executing rank 0's steps until it stops. Ctrl-C and
    /// SIGTERM reach every rank under mpirun; here they are left to rank 0, which drains and then stops the stages.</summary>
    private static void RunStage(ServerHostOptions options, DistributedContext job)
    {
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => c.Cancel = true);
        using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => c.Cancel = true);
        // no adapters now: rank 0's residency tells this stage which to put where, and this stage reads its layers of them
        var (model, _) = PipelineServingStage.Load(options.ModelPath, options.Load with { Device = job.Device }, options.PipelineStages, job.Rank, []);
        using (model) new PipelineStageWorker(model, job.Communicator).Run();
    }

    private static string PrefixCache(long bytes) => bytes == 0 ? "prefix cache off" : $"prefix cache {bytes / (double)(1L << 30):0.##} GiB";
}
