using FinQLoRA.Models;
using FinQLoRA.Quantization;

namespace FinQLoRA.Cli.Commands;

/// <summary>The <c>--bits/--quant/--double-quant</c> flags that generate and merge share.</summary>
public static class QuantFlags
{
    public static bool ParseBool(string flag, string value) => value.ToLowerInvariant() switch
    {
        "true" or "yes" or "1" => true,
        "false" or "no" or "0" => false,
        _ => throw new UserInputException($"{flag} '{value}' is not true or false"),
    };

    /// <summary>The load options with the base quantized to <paramref name="bits"/> as it loads (16 = as stored).</summary>
    public static ModelLoadOptions Apply(ModelLoadOptions options, int bits, string quant, string doubleQuant)
    {
        if (bits is not (4 or 8 or 16)) throw new UserInputException($"--bits {bits} is not one of 4, 8, 16");
        return options.WithBits(bits, QuantizedLoading.ParseKind(quant), ParseBool("--double-quant", doubleQuant));
    }
}
