using System.ComponentModel;
using FinQLoRA.Adapters;
using FinQLoRA.Data.Sft;
using FinQLoRA.Data.Tasks;
using FinQLoRA.Evaluation;
using FinQLoRA.Inference;
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
    [CommandOption("--name <NAME>")][Description("model name in results (default: the folder name)")] public string? Name { get; set; }

    public override ValidationResult Validate() =>
        string.IsNullOrWhiteSpace(Tasks) ? ValidationResult.Error("--tasks is required")
        : (DataDir == null) == (Data == null) ? ValidationResult.Error("give exactly one of --data-dir or --data")
        : base.Validate();
}

public sealed class EvalCommand : Command<EvalSettings>
{
    public override int Execute(CommandContext context, EvalSettings s, CancellationToken cancellationToken)
    {
        var tasks = s.Tasks.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (s.Data != null && tasks.Length != 1) throw new UserInputException("--data holds one task's examples; give exactly one task in --tasks, or use --data-dir");
        foreach (string t in tasks) TaskRegistry.Get(t);
        var options = s.LoadOptions().WithBits(s.Bits, QuantizedLoading.ParseKind(s.Quant));
        using var bundle = ModelBundle.Load(s.Model, options);
        LoraConfig? lora = s.Adapter != null ? PeftAdapterFiles.Load(s.Adapter, bundle.Model) : null;
        long adapterBytes = s.Adapter != null ? Directory.GetFiles(s.Adapter).Sum(f => new FileInfo(f).Length) : 0;
        var evaluator = new TaskEvaluator(new TextGenerator(bundle.Model, bundle.Tokenizer));
        string name = s.Name ?? Path.GetFileName(Path.GetFullPath(s.Model).TrimEnd('/'));

        var table = new Table().AddColumns("task", "n", "accuracy", "weighted F1", "s/example", "batch");
        var results = new List<RunResult>();
        foreach (string t in tasks)
        {
            string file = s.Data ?? Path.Combine(s.DataDir!, $"{t}_test.jsonl");
            var examples = SftJsonl.Read(file);
            var (result, _) = evaluator.Evaluate(t, examples,
                new TaskEvaluator.Options(name, s.Bits == 16 ? null : s.Bits, lora?.Rank, lora != null, s.BatchSize, s.Limit, adapterBytes), s.Out);
            results.Add(result);
            table.AddRow(t, result.N.ToString(), $"{result.Accuracy:P1}", result.WeightedF1 is double f ? $"{f:P1}" : "-",
                $"{result.SecondsPerExample:F3}", result.BatchSize.ToString());
        }
        AnsiConsole.Write(table);
        if (s.Out != null) RunResultFile.Write(Path.Combine(s.Out, RunResultFile.FileName), results);
        return 0;
    }
}
