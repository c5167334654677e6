using TorchSharp;

namespace FinQLoRA.Formats.Gguf;

/// <summary>
/// The q/k row permutation between GGUF (Meta, interleaved RoPE pairs (2i, 2i+1)) and Hugging Face (rotate-half
/// pairs (i, i+d/2)), as in transformers' <c>convert_llama_weights_to_hf.py</c>: per head h of dim d,
/// <c>HF_row[h·d + j·d/2 + i] = GGUF_row[h·d + 2i + j]</c>. It acts on output rows only, so it applies unchanged to a
/// LoRA <c>B</c> matrix: P·(B·A) = (P·B)·A.
/// </summary>
public static class RopePermutation
{
    /// <summary>GGUF row order → HF row order. <paramref name="w"/> is [heads·d, cols] (or [heads·d]).</summary>
    public static torch.Tensor ToHf(torch.Tensor w, int heads) => Permute(w, heads, toHf: true);

    /// <summary>HF row order → GGUF row order (the inverse of <see cref="ToHf"/>).</summary>
    public static torch.Tensor ToGguf(torch.Tensor w, int heads) => Permute(w, heads, toHf: false);

    private static torch.Tensor Permute(torch.Tensor w, int heads, bool toHf)
    {
        long rows = w.shape[0];
        long cols = w.numel() / Math.Max(rows, 1);
        if (rows % (2 * heads) != 0)
            throw new UserInputException($"cannot permute RoPE rows: {rows} rows are not {heads} heads of an even head dimension");
        long half = rows / heads / 2;
        var shape = toHf ? new[] { heads, half, 2L, cols } : new[] { heads, 2L, half, cols };
        using var view = w.reshape(shape);
        using var swapped = view.transpose(1, 2);
        return swapped.reshape(w.shape).contiguous();
    }
}
