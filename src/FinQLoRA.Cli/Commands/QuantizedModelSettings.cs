using System.ComponentModel;
using FinQLoRA.Models;
using FinQLoRA.Quantization;
using Spectre.Console;
using Spectre.Console.Cli;
using FinQLoRA.Loading;

namespace FinQLoRA.Cli.Commands;

/// <summary>Model options plus the quantize-as-it-loads flags (<c>--bits/--quant/--double-quant</c>) of generate and serve.</summary>
public class QuantizedModelSettings : ModelSettings
{
    [CommandOption("--bits <N>")]
    [Description("4, 8 or 16: quantize the base as it loads (16 = as stored)")]
    [DefaultValue(16)]
    public int Bits { get; set; } = 16;

    [CommandOption("--quant <KIND>")]
    [Description("nf4 or fp4 (with --bits 4)")]
    [DefaultValue("nf4")]
    public string Quant { get; set; } = "nf4";

    [CommandOption("--double-quant <BOOL>")]
    [Description("double quantization of 4-bit constants (true/false)")]
    [DefaultValue("true")]
    public string DoubleQuant { get; set; } = "true";

    public override ValidationResult Validate() => FlagNames.Check(() => WeightBits.Require(Bits)) is { Successful: false } bad ? bad : base.Validate();

    /// <summary>The load options with the base quantized as the flags say.</summary>
    public ModelLoadOptions QuantizedLoadOptions() => QuantFlags.Apply(LoadOptions(), Bits, Quant, DoubleQuant);
}
