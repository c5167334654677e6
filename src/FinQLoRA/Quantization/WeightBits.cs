namespace FinQLoRA.Quantization;

/// <summary>
/// The precision of a frozen base: 16 (as stored), 8 (LLM.int8) or 4 (NF4/FP4). A value exists only for a supported
/// width: making one from any other number is the one-line "bits 3 is not one of 4, 8, 16" error, so a config or an
/// option set that holds a <see cref="WeightBits"/> is valid by construction. It reads and compares as its number
/// (<c>bits == 4</c>, <c>$"{bits}-bit"</c>), as the flags and YAML keys write it.
/// </summary>
public readonly record struct WeightBits
{
    public static IReadOnlyList<int> Supported { get; } = [4, 8, 16];

    /// <summary>"4, 8 or 16", for the train config's "expected ..." messages.</summary>
    public const string Expected = "4, 8 or 16";

    public WeightBits(int value) => Value = Require(value);

    public int Value { get; }

    public bool IsQuantized => Value != 16;

    public static bool IsSupported(int bits) => bits is 4 or 8 or 16;

    /// <summary><paramref name="bits"/> when supported; otherwise "<paramref name="field"/> 3 is not one of 4, 8, 16".</summary>
    public static int Require(int bits, string field = "bits") => IsSupported(bits) ? bits
        : throw UserInputException.About($"{new ConfigField(field)} {bits} is not one of {string.Join(", ", Supported)}");

    public static implicit operator WeightBits(int bits) => new(bits);
    public static implicit operator int(WeightBits bits) => bits.Value;

    public override string ToString() => Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
