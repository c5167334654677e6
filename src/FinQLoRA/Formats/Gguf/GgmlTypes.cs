namespace FinQLoRA.Formats.Gguf;

/// <summary>Block geometry of the ggml types (ggml.c <c>type_traits</c>): a row of ne[0] elements is stored as
/// ne[0]/BlockSize blocks of BlockBytes each.</summary>
public static class GgmlTypes
{
    public static bool IsKnown(uint type) => Enum.IsDefined(typeof(GgmlType), type);

    public static (int BlockSize, int BlockBytes) Geometry(GgmlType type) => type switch
    {
        GgmlType.F32 => (1, 4),
        GgmlType.F16 => (1, 2),
        GgmlType.BF16 => (1, 2),
        GgmlType.F64 => (1, 8),
        GgmlType.I8 => (1, 1),
        GgmlType.I16 => (1, 2),
        GgmlType.I32 => (1, 4),
        GgmlType.I64 => (1, 8),
        GgmlType.Q4_0 => (32, 18),
        GgmlType.Q4_1 => (32, 20),
        GgmlType.Q5_0 => (32, 22),
        GgmlType.Q5_1 => (32, 24),
        GgmlType.Q8_0 => (32, 34),
        GgmlType.Q8_1 => (32, 36),
        GgmlType.Q2_K => (256, 84),
        GgmlType.Q3_K => (256, 110),
        GgmlType.Q4_K => (256, 144),
        GgmlType.Q5_K => (256, 176),
        GgmlType.Q6_K => (256, 210),
        GgmlType.Q8_K => (256, 292),
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "unknown ggml type"),
    };

    /// <summary>Bytes of a tensor with dimensions <paramref name="ne"/>; null when ne[0] is not a whole number of blocks.</summary>
    public static long? ByteCount(GgmlType type, IReadOnlyList<long> ne)
    {
        var (blockSize, blockBytes) = Geometry(type);
        long ne0 = ne.Count == 0 ? 1 : ne[0];
        if (ne0 % blockSize != 0) return null;
        long rows = 1;
        for (int i = 1; i < ne.Count; i++) rows = checked(rows * ne[i]);
        return checked(ne0 / blockSize * blockBytes * rows);
    }

    /// <summary>The types a <see cref="GgufCheckpointReader"/> can turn into tensors.</summary>
    public static bool IsReadable(GgmlType type) => type is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16 or GgmlType.Q8_0;
}
