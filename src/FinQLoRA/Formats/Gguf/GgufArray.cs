namespace FinQLoRA.Formats.Gguf;

/// <summary>A GGUF array value. <see cref="Items"/> is a typed CLR array: <c>string[]</c>, <c>float[]</c>, <c>int[]</c>,
/// <c>uint[]</c>, … or <c>GgufArray[]</c> for nested arrays.</summary>
public sealed record GgufArray(GgufValueType ElementType, Array Items)
{
    public int Length => Items.Length;

    public static GgufArray Of(string[] items) => new(GgufValueType.String, items);
    public static GgufArray Of(float[] items) => new(GgufValueType.Float32, items);
    public static GgufArray Of(int[] items) => new(GgufValueType.Int32, items);
}
