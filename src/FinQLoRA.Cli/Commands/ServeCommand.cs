using FinQLoRA.Loading;
using System.ComponentModel;
using FinQLoRA.Adapters;
using FinQLoRA.Data.Chat;
using FinQLoRA.Inference;
using FinQLoRA.Models;
using FinQLoRA.Server;
using FinQLoRA.Serving;
using Spectre.Console;
using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

public sealed class ServeSettings : QuantizedModelSettings
{
    [CommandOption("--adapter <NAME=DIR>")]
    [Description("PEFT adapter folder served under NAME (repeatable); requests pick it with \"model\": \"NAME\"")]
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

    [CommandOption("--adapter-root <DIR>")]
    [Description("allow /v1/load_lora_adapter and /v1/unload_lora_adapter for adapter folders under DIR")]
    public string? AdapterRoot { get; set; }

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
        var adapters = AdapterSpec.Parse(s.Adapter);
        foreach (var a in adapters)
            if (a.Name == served) throw new UserInputException($"--adapter {a.Name}={a.Dir}: the name is the base model's served name; choose another");
        var setup = new GenerationSetup(s.Model, s.QuantizedLoadOptions()) { Adapters = adapters.Select(a => (a.Name, a.Dir)).ToList(), Command = "serve" };
        setup.Validate();
        var server = new ServerOptions
        {
            ServedModelName = served, Host = s.Host, Port = s.Port, ApiKey = key, AdapterRoot = s.AdapterRoot,
            ShutdownTimeout = TimeSpan.FromSeconds(s.ShutdownTimeout),
        };
        server.Validate();
        server.BindAddress();
        var modelPath = ModelPath.Classify(s.Model);
        var (config, reader) = ModelLoading.Open(modelPath);
        reader.Dispose();
        var engineOptions = new EngineOptions
        {
            MaxBatch = s.MaxBatch, MaxQueue = s.MaxQueue, MaxModelLen = s.MaxModelLen ?? Math.Min(config.MaxPositionEmbeddings, 4096),
        };
        engineOptions.Validate(config.MaxPositionEmbeddings);

        using var session = GenerationSession.Open(setup);
        string? tokenizerConfig = modelPath.IsGguf ? null : Path.Combine(modelPath.Checkpoint, "tokenizer_config.json");
        var chat = ChatFormat.Detect(session.Tokenizer, tokenizerConfig);
        var metrics = new ServerMetrics(served);
        using var engine = new ServingEngine(session.Model, session.Tokenizer, engineOptions, metrics);
        await using var app = OpenAiServer.Create(engine, server with { ChatFormat = chat }, metrics);
        using var interruption = new Interruption("stopping: new requests get 503 while running ones finish");
        await app.StartAsync(cancellationToken);
        string loaded = adapters.Count == 0 ? "no adapters" : "adapters " + string.Join(", ", adapters.Select(a => a.Name));
        Console.WriteLine($"finqlora serve: {app.Url} serving '{served}' ({s.Bits}-bit, {s.DType}, {s.Device}) with {loaded}; max batch {engineOptions.MaxBatch}, context {engineOptions.MaxModelLen}, chat format {chat?.Name ?? "none"}{(key is null ? "" : ", API key required")}; Ctrl-C stops");
        using (var stop = CancellationTokenSource.CreateLinkedTokenSource(interruption.Token, cancellationToken))
        {
            try { await Task.Delay(Timeout.Infinite, stop.Token); }
            catch (OperationCanceledException) { }
        }
        // Kestrel keeps listening while the engine drains, so late clients get 503 rather than a refused connection.
        app.BeginShutdown();
        bool drained = await engine.DrainAsync(server.ShutdownTimeout);
        await app.StopAsync();
        AnsiConsole.MarkupLine(drained ? "[grey]finqlora serve: stopped[/]" : "[yellow]finqlora serve: stopped; requests still running at the deadline were ended[/]");
        return 0;
    }
}
