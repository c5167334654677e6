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
    [CommandOption("--model <PATH>")][TrainKeyDescription] public string? Model { get; set; }
    [CommandOption("--data <FILE>")][TrainKeyDescription] public string[]? Data { get; set; }
    [CommandOption("--eval-data <FILE>")][TrainKeyDescription] public string? EvalData { get; set; }
    [CommandOption("--data-format <FORMAT>")][TrainKeyDescription] public string? DataFormat { get; set; }
    [CommandOption("--chat-template <NAME>")][TrainKeyDescription] public string? ChatTemplate { get; set; }
    [CommandOption("--eval-split <SHARE>")][TrainKeyDescription] public string? EvalSplit { get; set; }
    [CommandOption("--eval-every <N>")][TrainKeyDescription] public string? EvalEvery { get; set; }
    [CommandOption("--eval-samples <K>")][TrainKeyDescription] public string? EvalSamples { get; set; }
    [CommandOption("--eval-task <TASK>")][TrainKeyDescription] public string? EvalTask { get; set; }
    [CommandOption("--metric-for-best <M>")][TrainKeyDescription] public string? MetricForBest { get; set; }
    [CommandOption("--save-best")][TrainKeyDescription] public bool SaveBest { get; set; }
    [CommandOption("--early-stopping-patience <P>")][TrainKeyDescription] public string? EarlyStoppingPatience { get; set; }
    [CommandOption("--report-to <TRACKER>")][TrainKeyDescription] public string? ReportTo { get; set; }
    [CommandOption("--out <DIR>")][TrainKeyDescription] public string? Out { get; set; }
    [CommandOption("--bits <N>")][TrainKeyDescription] public string? Bits { get; set; }
    [CommandOption("--quant <KIND>")][TrainKeyDescription] public string? Quant { get; set; }
    [CommandOption("--double-quant <BOOL>")][TrainKeyDescription] public string? DoubleQuant { get; set; }
    [CommandOption("--rank <R>")][TrainKeyDescription] public string? Rank { get; set; }
    [CommandOption("--alpha <A>")][TrainKeyDescription] public string? Alpha { get; set; }
    [CommandOption("--dropout <P>")][TrainKeyDescription] public string? Dropout { get; set; }
    [CommandOption("--targets <LIST>")][TrainKeyDescription] public string? Targets { get; set; }
    [CommandOption("--use-rslora <BOOL>")][TrainKeyDescription] public string? UseRslora { get; set; }
    [CommandOption("--use-dora <BOOL>")][TrainKeyDescription] public string? UseDora { get; set; }
    [CommandOption("--lora-a-frozen <BOOL>")][TrainKeyDescription] public string? LoraAFrozen { get; set; }
    [CommandOption("--adapter-dtype <DTYPE>")][TrainKeyDescription] public string? AdapterDtype { get; set; }
    [CommandOption("--lr <LR>")][TrainKeyDescription] public string? Lr { get; set; }
    [CommandOption("--epochs <E>")][TrainKeyDescription] public string? Epochs { get; set; }
    [CommandOption("--max-steps <N>")][TrainKeyDescription] public string? MaxSteps { get; set; }
    [CommandOption("--batch-size <B>")][TrainKeyDescription] public string? BatchSize { get; set; }
    [CommandOption("--grad-accum <G>")][TrainKeyDescription] public string? GradAccum { get; set; }
    [CommandOption("--max-seq-len <L>")][TrainKeyDescription] public string? MaxSeqLen { get; set; }
    [CommandOption("--optimizer <NAME>")][TrainKeyDescription] public string? Optimizer { get; set; }
    [CommandOption("--weight-decay <W>")][TrainKeyDescription] public string? WeightDecay { get; set; }
    [CommandOption("--momentum <M>")][TrainKeyDescription] public string? Momentum { get; set; }
    [CommandOption("--lr-schedule <NAME>")][TrainKeyDescription] public string? LrSchedule { get; set; }
    [CommandOption("--warmup-steps <N>")][TrainKeyDescription] public string? WarmupSteps { get; set; }
    [CommandOption("--max-grad-norm <N>")][TrainKeyDescription] public string? MaxGradNorm { get; set; }
    [CommandOption("--save-every <N>")][TrainKeyDescription] public string? SaveEvery { get; set; }
    [CommandOption("--keep-checkpoints <N>")][TrainKeyDescription] public string? KeepCheckpoints { get; set; }
    [CommandOption("--log-every <N>")][TrainKeyDescription] public string? LogEvery { get; set; }
    [CommandOption("--seed <S>")][TrainKeyDescription] public string? Seed { get; set; }
    [CommandOption("--resume")][TrainKeyDescription] public bool Resume { get; set; }
    [CommandOption("--grad-checkpointing")][TrainKeyDescription] public bool GradCheckpointing { get; set; }
    [CommandOption("--packing")][TrainKeyDescription] public bool Packing { get; set; }
    [CommandOption("--dtype <DTYPE>")][TrainKeyDescription] public string? Dtype { get; set; }
    [CommandOption("--device <DEVICE>")][TrainKeyDescription] public string? Device { get; set; }
    [CommandOption("--var-freeze-step <N>")][TrainKeyDescription] public string? VarFreezeStep { get; set; }
    [CommandOption("--var-update-scaler <N>")][TrainKeyDescription] public string? VarUpdateScaler { get; set; }
    [CommandOption("--local-step-scaler <N>")][TrainKeyDescription] public string? LocalStepScaler { get; set; }
    [CommandOption("--local-step-clipper <N>")][TrainKeyDescription] public string? LocalStepClipper { get; set; }
    [CommandOption("--dp")][TrainKeyDescription] public bool Dp { get; set; }
    [CommandOption("--dp-sampling <KIND>")][TrainKeyDescription] public string? DpSampling { get; set; }
    [CommandOption("--dp-max-grad-norm <C>")][TrainKeyDescription] public string? DpMaxGradNorm { get; set; }
    [CommandOption("--dp-noise-multiplier <SIGMA>")][TrainKeyDescription] public string? DpNoiseMultiplier { get; set; }
    [CommandOption("--dp-target-epsilon <E>")][TrainKeyDescription] public string? DpTargetEpsilon { get; set; }
    [CommandOption("--dp-delta <D>")][TrainKeyDescription] public string? DpDelta { get; set; }
    [CommandOption("--dp-max-epsilon <E>")][TrainKeyDescription] public string? DpMaxEpsilon { get; set; }
    [CommandOption("--dp-unit <UNIT>")][TrainKeyDescription] public string? DpUnit { get; set; }
    [CommandOption("--dp-accountant <NAME>")][TrainKeyDescription] public string? DpAccountant { get; set; }

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
    public static readonly IReadOnlyList<string> OwnFlags = ["--config"];

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
                AnsiConsole.MarkupLine($"[green]done[/]: {result.Steps} steps, loss {result.FinalLoss:F4}, {result.TokensPerSecond:F0} tok/s, adapter {Markup.Escape(result.AdapterDir)} ({result.AdapterBytes / 1024.0:F1} KiB){(result.Privacy is { } p ? $", ε {p.Epsilon:F3} at δ {p.Delta:G3}" : "")}");
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
