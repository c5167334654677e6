using System.ComponentModel;
using FinQLoRA.Quantization;
using FinQLoRA.Recipes;
using Spectre.Console;
using Spectre.Console.Cli;
using FinQLoRA.Loading;

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
    [CommandOption("--micro-batches <M>")][Description("with --pipeline-stages: micro-batches each step's rows flow through the stages in")][DefaultValue(1)] public int MicroBatches { get; set; } = 1;
    [CommandOption("--name <NAME>")][Description("model name in results (default: the folder name)")] public string? Name { get; set; }

    public override ValidationResult Validate() =>
        Mode is not ("generate" or "choice") ? ValidationResult.Error($"--mode {Mode}: use generate or choice") : base.Validate();
}

public sealed class EvalCommand : Command<EvalSettings>
{
    public override int Execute(CommandContext context, EvalSettings s, CancellationToken cancellationToken)
    {
        var request = new EvaluationRequest(s.Model, s.LoadOptions().WithBits(s.Bits, FourBitTypes.Spellings.Parse(s.Quant, "quant")), s.Bits,
            s.Tasks.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            Adapter = s.Adapter, DataDir = s.DataDir, Data = s.Data, Limit = s.Limit, BatchSize = s.BatchSize, Out = s.Out,
            Overwrite = s.Overwrite, Choice = s.Mode == "choice", PipelineStages = s.PipelineStages, MicroBatches = s.MicroBatches, Name = s.Name,
        };
        var table = new Table().AddColumns("task", "n", "accuracy", "weighted F1", "s/example", "batch");
        var results = EvaluationRecipe.Run(request, result => table.AddRow(result.Task, result.N.ToString(), $"{result.Accuracy:P1}",
            result.WeightedF1 is double f ? $"{f:P1}" : "-", $"{result.SecondsPerExample:F3}", result.BatchSize.ToString()));
        if (results.Count > 0) AnsiConsole.Write(table); // other pipeline ranks print nothing
        return 0;
    }
}
