using System.ComponentModel;
using FinQLoRA.Adapters;
using FinQLoRA.Data.Sft;
using FinQLoRA.Data.Tasks;
using FinQLoRA.Evaluation;
using FinQLoRA.Distributed;
using FinQLoRA.Inference;
using FinQLoRA.Inference.Pipeline;
using FinQLoRA.Models;
using FinQLoRA.Quantization;
using Spectre.Console;
using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

public sealed class EvalSettings : ModelSettings
{
    [CommandOption("--adapter <DIR>")][Description("PEFT adapter folder to apply (omit for the base model)")] public string? Adapter { get; set; }
    [CommandOption("--bits <N>")][Description("4, 8 or 16: precision of the base weights")][DefaultValue(16)] public int Bits { get; set; } = 16;
    [CommandOption("--quant <KIND>")][DefaultValue("nf4")] public string Quant { get; set; } = "nf4";
    [CommandOption("--tasks <LIST>")][Description("comma-separated task names (fpb, fiqa, tfns, nwgi, headline, ner, ...)")] public string Tasks { get; set; } = "";
    [CommandOption("--data-dir <DIR>")][Description("folder holding <task>_test.jsonl files (e.g. the FinLoRA test folder)")] public string? DataDir { get; set; }
    [CommandOption("--data <FILE>")][Description("one JSONL file (with a single task)")] public string? Data { get; set; }
    [CommandOption("--limit <N>")][Description("evaluate only the first N examples of each task")] public int? Limit { get; set; }
    [CommandOption("--batch-size <B>")][DefaultValue(8)] public int BatchSize { get; set; } = 8;
    [CommandOption("--out <DIR>")][Description("writes <task>/predictions.jsonl and <task>/results.json")] public string? Out { get; set; }
    [CommandOption("--mode <MODE>")][Description("generate (default: greedy answers, the paper's protocol) or choice (classification by label log-likelihood)")][DefaultValue("generate")] public string Mode { get; set; } = "generate";
    [CommandOption("--overwrite")][Description("replace an existing --out that FinQLoRA wrote earlier")] public bool Overwrite { get; set; }
    [CommandOption("--pipeline-stages <N>")][Description("split the layers over N MPI ranks (run under mpirun -np N)")][DefaultValue(1)] public int PipelineStages { get; set; } = 1;
    [CommandOption("--micro-batches <M>")][Description("with --pipeline-stages: micro-batches per batch")][DefaultValue(1)] public int MicroBatches { get; set; } = 1;
    [CommandOption("--name <NAME>")][Description("model name in results (default: the folder name)")] public string? Name { get; set; }

    public override ValidationResult Validate() =>
        string.IsNullOrWhiteSpace(Tasks) ? ValidationResult.Error("--tasks is required")
        : (DataDir == null) == (Data == null) ? ValidationResult.Error("give exactly one of --data-dir or --data")
        : Mode is not ("generate" or "choice") ? ValidationResult.Error($"--mode {Mode}: use generate or choice")
        : Mode == "choice" && PipelineStages > 1 ? ValidationResult.Error("--mode choice runs in one process; drop --pipeline-stages")
        : base.Validate();
}

public sealed class EvalCommand : Command<EvalSettings>
{
    public override int Execute(CommandContext context, EvalSettings s, CancellationToken cancellationToken)
    {
        var tasks = s.Tasks.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (s.Data != null && tasks.Length != 1) throw new UserInputException("--data holds one task's examples; give exactly one task in --tasks, or use --data-dir");
        foreach (string t in tasks)
            if (TaskRegistry.Get(t) is { IsClassification: false } task && s.Mode == "choice")
                throw new UserInputException($"--mode choice scores classification tasks by their labels; {t} is scored by {task.Metric}; evaluate it with --mode generate");
        if (s.Out != null)
        {
            FinQLoRA.IO.OutputPlacement.CheckFolder(s.Out, [s.Model, s.Adapter, s.DataDir, s.Data], s.Overwrite);
            Directory.CreateDirectory(s.Out);
            if (!FinQLoRA.IO.OutputMarker.IsMarked(s.Out)) FinQLoRA.IO.OutputMarker.Write(s.Out, "evaluation");
        }
        var options = s.LoadOptions().WithBits(s.Bits, FourBitTypes.Spellings.Parse(s.Quant, "quant"));
        using var dist = s.PipelineStages > 1 ? DistributedContext.FromEnvironment() : null;
        if (dist != null && dist.Size != s.PipelineStages)
            throw new UserInputException($"--pipeline-stages {s.PipelineStages} needs a job of {s.PipelineStages} ranks but this one has {dist.Size}; run: mpirun -np {s.PipelineStages} finqlora eval --pipeline-stages {s.PipelineStages} ...");
        bool main = dist?.IsMain ?? true;
        var tokenizer = ModelBundle.LoadTokenizer(s.Model);
        LlamaModel model;
        IBatchGenerator generator;
        if (dist != null)
        {
            var (stage, plan) = PipelineStageLoader.Load(s.Model, options with { Device = dist.Device }, s.PipelineStages, dist.Rank);
            model = stage;
            generator = new PipelineGenerator(stage, plan, dist.Communicator, tokenizer) { MicroBatches = s.MicroBatches };
        }
        else
        {
            model = ModelLoader.Load(s.Model, options);
            generator = new TextGenerator(model, tokenizer);
        }
        using var _ = model;
        if (dist != null && s.Adapter != null)
            throw new UserInputException("--adapter with --pipeline-stages: merge the adapter first (finqlora merge) and evaluate the merged model");
        LoraConfig? lora = s.Adapter != null ? PeftAdapterFiles.Load(s.Adapter, model) : null;
        long adapterBytes = s.Adapter != null ? Directory.GetFiles(s.Adapter).Sum(f => new FileInfo(f).Length) : 0;
        double deviceHours = s.Adapter != null ? TrainingDeviceHours(s.Adapter) : 0;
        var evaluator = new TaskEvaluator(generator);
        string name = s.Name ?? Path.GetFileName(Path.GetFullPath(s.Model).TrimEnd('/'));

        var table = new Table().AddColumns("task", "n", "accuracy", "weighted F1", "s/example", "batch");
        var results = new List<RunResult>();
        foreach (string t in tasks)
        {
            string file = s.Data ?? Path.Combine(s.DataDir!, $"{t}_test.jsonl");
            var examples = ExampleJsonl.Read(file);
            var (result, _) = evaluator.Evaluate(t, examples,
                new TaskEvaluator.Options(name, s.Bits == 16 ? null : s.Bits, lora?.Rank, lora != null, s.BatchSize, s.Limit, adapterBytes, deviceHours, s.Mode == "choice"), main ? s.Out : null);
            if (result == null) continue;
            results.Add(result);
            table.AddRow(t, result.N.ToString(), $"{result.Accuracy:P1}", result.WeightedF1 is double f ? $"{f:P1}" : "-",
                $"{result.SecondsPerExample:F3}", result.BatchSize.ToString());
        }
        if (!main) return 0;
        AnsiConsole.Write(table);
        if (s.Out != null) RunResultFile.Write(Path.Combine(s.Out, RunResultFile.FileName), results);
        return 0;
    }

    /// <summary>The fine-tuning cost of an adapter: device_hours from the run.json that `finqlora train` wrote
    /// beside it (<c>out/adapter</c> → <c>out/run.json</c>); 0 when the adapter came from elsewhere.</summary>
    private static double TrainingDeviceHours(string adapterDir)
    {
        string runJson = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(adapterDir).TrimEnd('/'))!, "run.json");
        if (!File.Exists(runJson)) return 0;
        try { return System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(runJson))?["device_hours"]?.GetValue<double>() ?? 0; }
        catch (System.Text.Json.JsonException) { return 0; }
    }
}
