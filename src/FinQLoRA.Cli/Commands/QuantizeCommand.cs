using System.ComponentModel;
using FinQLoRA.Options;
using FinQLoRA.Quantization;
using FinQLoRA.Runtime;
using FinQLoRA.Recipes;
using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

/// <summary><c>finqlora quantize --model PATH --bits 4|8 [--quant nf4|fp4] [--double-quant true|false] [--dtype D] --out DIR</c>.</summary>
internal sealed class QuantizeCommand : Command<QuantizeCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--model <PATH>"), Description("Hugging Face Llama folder (config.json + safetensors), 16 or 32-bit")]
        public string Model { get; init; } = "";

        [CommandOption("--bits <BITS>"), Description("4 (bitsandbytes NF4/FP4) or 8 (LLM.int8)")]
        [DefaultValue(4)]
        public int Bits { get; init; } = 4;

        [CommandOption("--quant <KIND>"), Description("nf4 or fp4 (with --bits 4)")]
        [DefaultValue("nf4")]
        public string Quant { get; init; } = "nf4";

        [CommandOption("--double-quant <BOOL>"), Description("quantize the 4-bit block scales again (bnb_4bit_use_double_quant)")]
        [DefaultValue("true")]
        public string DoubleQuant { get; init; } = "true";

        [CommandOption("--dtype <DTYPE>"), Description("dtype of embeddings, norms and lm_head (bf16, f16, f32); default: the model's torch_dtype")]
        public string? DType { get; init; }

        [CommandOption("--out <DIR>"), Description("new or empty output folder")]
        public string Out { get; init; } = "";

        [CommandOption("--overwrite"), Description(OutputOptionHelp.Overwrite)]
        public bool Overwrite { get; init; }

        public override Spectre.Console.ValidationResult Validate()
        {
            // 16 passes here: the quantizer itself refuses it, saying to use 4 or 8
            return RequiredOptions.Missing(("--model", Model), ("--out", Out))
                ?? FlagNames.Check(() => { WeightBits.Require(Bits); BoolText.Parse(DoubleQuant, "double_quant"); });
        }
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellationToken)
    {
        var options = new QuantizeOptions
        {
            ModelPath = s.Model, OutPath = s.Out, Bits = s.Bits, Quant = FourBitTypes.Spellings.Parse(s.Quant, "quant"),
            DoubleQuant = BoolText.Parse(s.DoubleQuant, "double_quant"), Overwrite = s.Overwrite,
            DType = s.DType is { } d ? ComputeDtypes.Spellings.Parse(d, "dtype") : null,
        };
        var r = QuantizeRecipe.Run(options);
        Console.WriteLine($"wrote {r.OutputFolder}: {r.QuantizedProjections} projections {s.Bits}-bit ({QuantizeRecipe.Describe(options)}), {r.CopiedTensors} tensors kept; " +
                          $"weights {MemoryUsage.Format(r.InputWeightBytes)} → {MemoryUsage.Format(r.OutputWeightBytes)}, peak RSS {MemoryUsage.Format(r.PeakRssBytes)}");
        return 0;
    }
}
