namespace FinQLoRA.Formats.Gguf;

/// <summary>One tensor of a GGUF file as its header describes it. <see cref="Ne"/> is in ggml order (ne[0] is the
/// contiguous dimension), so the PyTorch shape is its reverse. <see cref="Offset"/> is relative to the data area.</summary>
public sealed record GgufTensorInfo(string Name, long[] Ne, GgmlType Type, long Offset, long ByteCount)
{
    public long[] TorchShape => Ne.Reverse().ToArray();

    public long ElementCount => Ne.Aggregate(1L, (a, b) => a * b);
}
