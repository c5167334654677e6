using System.ComponentModel;
using FinQLoRA.Adapters;
using FinQLoRA.Recipes;
using FinQLoRA.Options;
using FinQLoRA.Quantization;
using FinQLoRA.Runtime;
using Spectre.Console;
using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

/// <summary><c>finqlora merge --model PATH --adapter DIR --out DIR [--to hf|gguf] [--dtype bf16|f16|f32] [--bits 4|8|16]</c>.</summary>
public sealed class MergeCommand : Command<MergeCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--model <PATH>"), Description("base model: HF folder or .gguf (the one the adapter was trained on)")]
        public string Model { get; init; } = "";

        [CommandOption("--adapter <DIR>"), Description("PEFT adapter folder (adapter_config.json, adapter_model.safetensors)")]
        public string Adapter { get; init; } = "";

        [CommandOption("--out <PATH>"), Description("output HF folder (--to hf) or .gguf file (--to gguf)")]
        public string Out { get; init; } = "";

        [CommandOption("--overwrite"), Description(OutputOptionHelp.Overwrite)]
        public bool Overwrite { get; init; }

        [CommandOption("--to <FORMAT>"), Description("hf (default) or gguf"), DefaultValue("hf")]
        public string To { get; init; } = "hf";

        [CommandOption("--dtype <DTYPE>"), Description("bf16 (default), f16 or f32: dtype of the merged weights"), DefaultValue("bf16")]
        public string DType { get; init; } = "bf16";

        [CommandOption("--bits <N>"), Description("16 (default), or 4/8 to merge onto the quantized base the adapter was trained against"), DefaultValue(16)]
        public int Bits { get; init; } = 16;

        [CommandOption("--quant <KIND>"), Description("nf4 or fp4 (with --bits 4)"), DefaultValue("nf4")]
        public string Quant { get; init; } = "nf4";

        [CommandOption("--double-quant <BOOL>"), Description("double quantization of 4-bit constants (true/false)"), DefaultValue("true")]
        public string DoubleQuant { get; init; } = "true";

        public override ValidationResult Validate()
        {
            if (RequiredOptions.Missing(("--model", Model), ("--adapter", Adapter), ("--out", Out)) is { } missing) return missing;
            if (To is not ("hf" or "gguf")) return ValidationResult.Error($"--to '{To}' is not one of hf, gguf");
            return FlagNames.Check(() => WeightBits.Require(Bits));
        }
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellationToken)
    {
        var result = AdapterMerge.Run(new AdapterMergeOptions
        {
            ModelPath = s.Model, AdapterDir = s.Adapter, OutPath = s.Out, To = s.To, Overwrite = s.Overwrite,
            DType = ComputeDtypes.Spellings.Parse(s.DType, "dtype"), Bits = s.Bits, Quant = FourBitTypes.Spellings.Parse(s.Quant, "quant"),
            DoubleQuant = BoolText.Parse(s.DoubleQuant, "double_quant"),
        });
        if (result.DequantizedBase)
            AnsiConsole.MarkupLine($"[yellow]note[/]: the base is {s.Bits}-bit quantized; the adapter was merged onto its dequantized weights (W = dequant(Q(W₀)) + s·B·A), written as {s.DType}");
        AnsiConsole.MarkupLine($"merged {result.MergedProjections} projections → {Markup.Escape(result.OutPath)} ({result.Format}, {result.Bytes / (1024.0 * 1024.0):F1} MiB)");
        return 0;
    }
}
