using FinQLoRA.Models.Families;
using System.ComponentModel;
using FinQLoRA.Adapters;
using FinQLoRA.Models;
using FinQLoRA.Quantization;
using FinQLoRA.Planning;
using Spectre.Console;
using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

/// <summary><c>finqlora memory</c>: weight and runtime memory of a model of any family at 16, 8 or 4 bits, for inference or training.</summary>
internal sealed class MemoryCommand : Command<MemoryCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--model <MODEL>")]
        [Description("A model folder with config.json, or a preset: " + ModelPresets.NameList + ".")]
        public string Model { get; init; } = "";

        [CommandOption("--bits <BITS>")]
        [Description("16 (bf16), 8 (LLM.int8) or 4 (NF4 with double quantization).")]
        [DefaultValue(4)]
        public int Bits { get; init; } = 4;

        [CommandOption("--json")]
        [Description("Print the plan as JSON.")]
        public bool Json { get; init; }

        [CommandOption("--context <TOKENS>")]
        [Description("Inference context length for the KV cache and activations.")]
        [DefaultValue(MemoryPlanner.DefaultContextTokens)]
        public int Context { get; init; } = MemoryPlanner.DefaultContextTokens;

        [CommandOption("--train")]
        [Description("Plan a LoRA/QLoRA training run instead of inference.")]
        public bool Train { get; init; }

        [CommandOption("--batch-size <B>")]
        [DefaultValue(1)]
        public int BatchSize { get; init; } = 1;

        [CommandOption("--seq-len <S>")]
        [DefaultValue(512)]
        public int SeqLen { get; init; } = 512;

        [CommandOption("--rank <R>")]
        [DefaultValue(LoraConfig.DefaultRank)]
        public int Rank { get; init; } = LoraConfig.DefaultRank;

        [CommandOption("--targets <TARGETS>")]
        [Description("Adapter targets, as train's --targets takes them (q_proj,k_proj,v_proj, any projections of the model's family, or all-linear); q,k,v is short for the default.")]
        [DefaultValue("q_proj,k_proj,v_proj")]
        public string Targets { get; init; } = "q_proj,k_proj,v_proj";

        private string TargetNames => Targets.Replace(" ", "") == "q,k,v" ? "q_proj,k_proj,v_proj" : Targets;

        /// <summary>The projections of the model's family <see cref="Targets"/> names.</summary>
        public IReadOnlyList<ProjectionKind> TargetKinds(ModelConfig config) => LoraTargets.Resolve(TargetNames, config.Family, "--targets");

        /// <summary>Checks the names before any model is read (which of them the family has is checked with its config).</summary>
        public void CheckTargetNames() => LoraTargets.Parse(TargetNames, "--targets");

        [CommandOption("--target-tokens <N>")]
        [Description("Supervised (target) tokens per sequence, the only positions given logits in training: 1-3 for a classification task, the answer's length for completion-only SFT. Default: every token (--seq-len).")]
        public int? TargetTokens { get; init; }

        [CommandOption("--grad-checkpointing")]
        public bool GradientCheckpointing { get; init; }

        [CommandOption("--device <DEVICE>")]
        [Description("cuda (GPU memory) or cpu (peak RSS of a CPU training process; with --train).")]
        [DefaultValue("cuda")]
        public string Device { get; init; } = "cuda";

        [CommandOption("--dropout <P>")]
        [Description("LoRA dropout (a mask byte per adapted input element when > 0).")]
        [DefaultValue(0.1)]
        public double Dropout { get; init; } = 0.1;

        public override ValidationResult Validate()
        {
            if (string.IsNullOrWhiteSpace(Model)) return ValidationResult.Error("--model is required (a folder with config.json, or a preset: " + ModelPresets.NameList + ")");
            if (FlagNames.Check(() => { WeightBits.Require(Bits); CheckTargetNames(); }) is { Successful: false } bad) return bad;
            if (TargetTokens is { } n && (n < 1 || n > SeqLen)) return ValidationResult.Error($"--target-tokens {n}: use a number from 1 to --seq-len ({SeqLen})");
            if (TargetTokens is not null && !Train) return ValidationResult.Error("--target-tokens is a training setting; add --train");
            if (Dropout is < 0 or >= 1) return ValidationResult.Error($"--dropout {Dropout}: use a number in [0, 1)");
            string d = Device.ToLowerInvariant();
            if (d is not ("cuda" or "cpu")) return ValidationResult.Error($"--device '{Device}': use cuda or cpu");
            if (d == "cpu" && !Train) return ValidationResult.Error("--device cpu is modelled for training only; add --train (inference plans are for GPU memory)");
            return ValidationResult.Success();
        }
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellationToken)
    {
        ModelConfig config = ModelPresets.Get(s.Model)
            ?? (Directory.Exists(s.Model) || File.Exists(s.Model) ? ModelConfig.Load(s.Model)
                : throw new UserInputException($"--model {s.Model}: neither a folder with config.json nor a preset; use a model folder or one of {ModelPresets.NameList}"));
        var options = new QuantizationOptions(Bits: s.Bits);
        MemoryPlan plan = s.Train
            ? MemoryPlanner.Training(config, options, new TrainingMemoryOptions(s.BatchSize, s.SeqLen, s.Rank,
                s.TargetKinds(config), s.GradientCheckpointing, s.Dropout,
                s.Device.Equals("cpu", StringComparison.OrdinalIgnoreCase) ? MemoryDevice.Cpu : MemoryDevice.Cuda, s.TargetTokens), s.Model)
            : MemoryPlanner.Inference(config, options, s.Model, s.Context);

        if (s.Json)
        {
            Console.WriteLine(plan.ToJson().ToJsonString());
            return 0;
        }
        var table = new Table().AddColumn("component").AddColumn(new TableColumn("GiB").RightAligned()).AddColumn("note");
        foreach (var c in plan.Components)
            table.AddRow(Markup.Escape(c.Name), $"{c.Bytes / MemoryPlan.GiB:F3}", Markup.Escape(c.Note));
        table.AddRow("[bold]weights[/]", $"[bold]{plan.WeightsBytes / MemoryPlan.GiB:F2}[/]", "");
        table.AddRow("[bold]total[/]", $"[bold]{plan.TotalBytes / MemoryPlan.GiB:F2}[/]", Markup.Escape($"{plan.Mode}, {s.Bits}-bit"));
        AnsiConsole.Write(table);
        return 0;
    }
}
