namespace FinQLoRA.Quantization;

/// <summary>
/// The precisions a frozen base can have: 16 (as stored), 8 (LLM.int8) or 4 (NF4/FP4). Every option that takes a
/// width (train's bits, generate/serve/merge/memory/quantize --bits, <see cref="QuantizationOptions"/>) checks it here.
/// </summary>
public static class WeightBits
{
    public static IReadOnlyList<int> Supported { get; } = [4, 8, 16];

    /// <summary>"4, 8 or 16", for the train config's "expected ..." messages.</summary>
    public const string Expected = "4, 8 or 16";

    public static bool IsSupported(int bits) => bits is 4 or 8 or 16;

    /// <summary><paramref name="bits"/> when supported; otherwise "<paramref name="field"/> 3 is not one of 4, 8, 16".</summary>
    public static int Require(int bits, string field = "bits") => IsSupported(bits) ? bits
        : throw UserInputException.About($"{new ConfigField(field)} {bits} is not one of {string.Join(", ", Supported)}");
}
