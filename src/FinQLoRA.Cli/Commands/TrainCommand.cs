using System.ComponentModel;
using System.Reflection;
using FinQLoRA.Distributed;
using FinQLoRA.Recipes;
using FinQLoRA.Runtime;
using FinQLoRA.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

/// <summary>Every run-config key as a flag (flags win over --config). Null means "not given".</summary>
public sealed class TrainSettings : CommandSettings
{
    [CommandOption("--config <FILE>")][Description("YAML run config with the keys below in snake_case (see configs/)")] public string? Config { get; set; }
    [CommandOption("--model <PATH>")][Description("base model: HF folder or .gguf")] public string? Model { get; set; }
    [CommandOption("--data <FILE>")][Description("training data (JSONL or .parquet); repeat as NAME=FILE[[:WEIGHT]] to train one adapter on a task family")] public string[]? Data { get; set; }
    [CommandOption("--eval-data <FILE>")][Description("held-out JSONL evaluated during (--eval-every) and after training")] public string? EvalData { get; set; }
    [CommandOption("--data-format <FORMAT>")][Description("auto (from the fields), context-target, alpaca or chat; JSONL or .parquet")] public string? DataFormat { get; set; }
    [CommandOption("--chat-template <NAME>")][Description("chat data: auto (the model's tokenizer_config.json), llama3, chatml or none")] public string? ChatTemplate { get; set; }
    [CommandOption("--eval-split <SHARE>")][Description("hold out this share of --data for evaluation (seeded), e.g. 0.05")] public string? EvalSplit { get; set; }
    [CommandOption("--eval-every <N>")][Description("evaluate every N optimizer steps (and at the end)")] public string? EvalEvery { get; set; }
    [CommandOption("--eval-samples <K>")][Description("score K held-out examples by greedy generation with the task metric")] public string? EvalSamples { get; set; }
    [CommandOption("--eval-task <TASK>")][Description("task whose scorer rates generated answers (fpb, tfns, ...); default exact match")] public string? EvalTask { get; set; }
    [CommandOption("--metric-for-best <M>")][Description("eval_loss (default), accuracy or f1")] public string? MetricForBest { get; set; }
    [CommandOption("--save-best")][Description("keep the adapter of the best evaluation in best/")] public bool SaveBest { get; set; }
    [CommandOption("--early-stopping-patience <P>")][Description("stop after P evaluations without improvement")] public string? EarlyStoppingPatience { get; set; }
    [CommandOption("--report-to <TRACKER>")][Description("none or tensorboard (event files in <out>/runs)")] public string? ReportTo { get; set; }
    [CommandOption("--out <DIR>")][Description("output folder (checkpoints, adapter, metrics.jsonl, run.json, loss.png)")] public string? Out { get; set; }
    [CommandOption("--bits <N>")][Description("4, 8 or 16: precision of the frozen base")] public string? Bits { get; set; }
    [CommandOption("--quant <KIND>")][Description("nf4 or fp4 (with --bits 4)")] public string? Quant { get; set; }
    [CommandOption("--double-quant <BOOL>")][Description("double quantization of 4-bit constants")] public string? DoubleQuant { get; set; }
    [CommandOption("--rank <R>")] public string? Rank { get; set; }
    [CommandOption("--alpha <A>")] public string? Alpha { get; set; }
    [CommandOption("--dropout <P>")] public string? Dropout { get; set; }
    [CommandOption("--targets <LIST>")][Description("q_proj,k_proj,v_proj (default), all, or any list of projections")] public string? Targets { get; set; }
    [CommandOption("--use-rslora <BOOL>")] public string? UseRslora { get; set; }
    [CommandOption("--use-dora <BOOL>")] public string? UseDora { get; set; }
    [CommandOption("--lr <LR>")] public string? Lr { get; set; }
    [CommandOption("--epochs <E>")] public string? Epochs { get; set; }
    [CommandOption("--max-steps <N>")] public string? MaxSteps { get; set; }
    [CommandOption("--batch-size <B>")][Description("examples per micro-batch per rank")] public string? BatchSize { get; set; }
    [CommandOption("--grad-accum <G>")] public string? GradAccum { get; set; }
    [CommandOption("--max-seq-len <L>")] public string? MaxSeqLen { get; set; }
    [CommandOption("--optimizer <NAME>")][Description("adamw or zero-one-adam")] public string? Optimizer { get; set; }
    [CommandOption("--weight-decay <W>")] public string? WeightDecay { get; set; }
    [CommandOption("--lr-schedule <NAME>")][Description("cosine, linear or constant (after warmup)")] public string? LrSchedule { get; set; }
    [CommandOption("--warmup-steps <N>")] public string? WarmupSteps { get; set; }
    [CommandOption("--max-grad-norm <N>")] public string? MaxGradNorm { get; set; }
    [CommandOption("--save-every <N>")] public string? SaveEvery { get; set; }
    [CommandOption("--keep-checkpoints <N>")] public string? KeepCheckpoints { get; set; }
    [CommandOption("--log-every <N>")] public string? LogEvery { get; set; }
    [CommandOption("--seed <S>")] public string? Seed { get; set; }
    [CommandOption("--resume")][Description("continue from the latest checkpoint in --out")] public bool Resume { get; set; }
    [CommandOption("--grad-checkpointing")][Description("recompute each decoder layer in backward")] public bool GradCheckpointing { get; set; }
    [CommandOption("--packing")][Description("bin-pack short examples into --max-seq-len rows (per-example positions, no attention across examples)")] public bool Packing { get; set; }
    [CommandOption("--dtype <DTYPE>")][Description("bf16, f32 or f16")] public string? Dtype { get; set; }
    [CommandOption("--device <DEVICE>")][Description("cpu, cuda or cuda:N (under mpirun: cuda:<local rank>)")] public string? Device { get; set; }
    [CommandOption("--var-freeze-step <N>")] public string? VarFreezeStep { get; set; }
    [CommandOption("--var-update-scaler <N>")] public string? VarUpdateScaler { get; set; }
    [CommandOption("--local-step-scaler <N>")] public string? LocalStepScaler { get; set; }
    [CommandOption("--local-step-clipper <N>")] public string? LocalStepClipper { get; set; }
    [CommandOption("--verbose")] public bool Verbose { get; set; }

    /// <summary>The YAML values, then every flag that was given on top.</summary>
    public Dictionary<string, string> Values()
    {
        var values = Config != null ? TrainConfig.ReadYaml(Config) : new Dictionary<string, string>();
        foreach (var (key, property) in KeyOptions)
        {
            object? v = property.GetValue(this);
            if (v is string s) values[key.Name] = s;
            else if (v is string[] { Length: > 0 } many) values[key.Name] = string.Join(DataSource.Separator, many);
            else if (v is true) values[key.Name] = "true";
        }
        return values;
    }

    /// <summary>The options that are not train keys.</summary>
    public static readonly IReadOnlyList<string> OwnFlags = ["--config", "--verbose"];

    /// <summary>The long flag of every option of these settings (<c>--max-seq-len</c>), with its property.</summary>
    public static IReadOnlyDictionary<string, PropertyInfo> Options { get; } = typeof(TrainSettings).GetProperties()
        .Select(p => (Property: p, Option: p.GetCustomAttribute<CommandOptionAttribute>()))
        .Where(x => x.Option != null)
        .ToDictionary(x => "--" + x.Option!.LongNames[0], x => x.Property);

    /// <summary>Every train key with the option that sets it, found by its flag (<see cref="FlagNames.For"/> of the key):
    /// the keys are declared once, in <see cref="TrainKeys"/>, and the options only spell them for Spectre.</summary>
    public static IReadOnlyList<(TrainKey Key, PropertyInfo Option)> KeyOptions { get; } =
        [.. TrainKeys.All.Where(k => k.HasFlag).Select(k => (k, Options.GetValueOrDefault(FlagNames.For(k.Name)) ?? throw new InvalidOperationException($"train key {k.Name} has no {FlagNames.For(k.Name)} option")))];
}

/// <summary><c>finqlora train</c>: the config from YAML and flags, one <see cref="FineTuneRecipe"/> run, its result on
/// stdout (progress goes to stderr).</summary>
public sealed class TrainCommand : Command<TrainSettings>
{
    public override int Execute(CommandContext context, TrainSettings settings, CancellationToken cancellationToken)
    {
        var config = TrainConfig.FromValues(settings.Values(), settings.Config ?? "flags") with { ConfigFile = settings.Config };
        using var job = DistributedContext.FromEnvironment();
        using var interruption = new Interruption("stopping after the current optimizer step to save a checkpoint");
        var options = new FineTuneOptions
        {
            Config = config, Progress = Console.Error.WriteLine, Stop = interruption.Token, DescribeError = FlagNames.Render,
        };
        try
        {
            var result = FineTuneRecipe.Run(options, job);
            if (job.IsMain)
                AnsiConsole.MarkupLine($"[green]done[/]: {result.Steps} steps, loss {result.FinalLoss:F4}, {result.TokensPerSecond:F0} tok/s, adapter {Markup.Escape(result.AdapterDir)} ({result.AdapterBytes / 1024.0:F1} KiB)");
            return 0;
        }
        catch (TrainingInterruptedException e)
        {
            if (job.IsMain)
                Console.Error.WriteLine($"{interruption.SignalName}: {e.Message}; continue with the same command and --resume");
            return interruption.ExitCode;
        }
        catch (TrainingStoppedException e)
        {
            Console.Error.WriteLine($"error: {FlagNames.Render(e.Reason)}");
            return 3;
        }
    }
}
