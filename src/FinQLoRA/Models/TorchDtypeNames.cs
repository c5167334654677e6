using FinQLoRA.Options;
using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>
/// torch's dtype names without "torch." — a file format, not an option: config.json's <c>torch_dtype</c>,
/// bitsandbytes' quant-state <c>dtype</c> (<c>str(dtype).strip("torch.")</c>) and quantization_config's compute dtype.
/// Written and read only here.
/// </summary>
public static class TorchDtypeNames
{
    private static readonly NamedValues<ScalarType> Table = new(
        (ScalarType.BFloat16, ["bfloat16"]),
        (ScalarType.Float16, ["float16", "half"]),
        (ScalarType.Float32, ["float32", "float"]),
        (ScalarType.Float64, ["float64", "double"]));

    public static bool TryParse(string name, out ScalarType dtype) => Table.TryParse(name, out dtype);

    /// <summary>The dtype <paramref name="name"/> names; otherwise "<paramref name="source"/>: dtype 'x' is not one of ...".</summary>
    public static ScalarType Parse(string name, string source) => TryParse(name, out var dtype) ? dtype
        : throw new UserInputException($"{source}: dtype '{name}' is not one of bfloat16, float16, float32");

    /// <summary>torch's name of <paramref name="dtype"/> (bfloat16, float16, float32, float64).</summary>
    public static string Name(ScalarType dtype) => dtype is ScalarType.BFloat16 or ScalarType.Float16 or ScalarType.Float32 or ScalarType.Float64
        ? Table.Name(dtype)
        : throw new ArgumentException($"no torch dtype name for {dtype}", nameof(dtype));
}
