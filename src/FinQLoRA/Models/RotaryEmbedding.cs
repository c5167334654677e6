using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>
/// Rotary position embeddings in Hugging Face's rotate-half layout: dimension i of a head is paired with
/// i + d/2 (GGUF and Meta checkpoints pair 2i with 2i+1; their q/k rows are permuted when loaded).
/// Frequencies are <c>1/θ^(2i/d)</c>, optionally rescaled by Llama 3's <see cref="RopeScaling"/>.
/// </summary>
public sealed class RotaryEmbedding
{
    private readonly float[] _invFreq;

    public RotaryEmbedding(LlamaConfig config)
    {
        int half = config.HeadDim / 2;
        // Computed in fp32 as Hugging Face does, so that our logits match transformers' bit for bit where possible.
        var inv = new double[half];
        for (int i = 0; i < half; i++)
            inv[i] = 1.0f / MathF.Pow((float)config.RopeTheta, (2 * i) / (float)config.HeadDim);
        if (config.RopeScaling != null) inv = config.RopeScaling.Apply(inv);
        _invFreq = inv.Select(v => (float)v).ToArray();
    }

    /// <summary>cos and sin of shape [B, T, headDim] for integer positions [B, T], in <paramref name="dtype"/>.</summary>
    public (Tensor Cos, Tensor Sin) CosSin(Tensor positions, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var inv = tensor(_invFreq, device: positions.device);
        var freqs = positions.to(ScalarType.Float32).unsqueeze(-1) * inv;       // [B, T, d/2]
        var emb = cat([freqs, freqs], -1);                                     // [B, T, d]
        return (emb.cos().to(dtype).MoveToOuterDisposeScope(), emb.sin().to(dtype).MoveToOuterDisposeScope());
    }

    /// <summary>x·cos + rotate_half(x)·sin for x of shape [B, heads, T, d] and cos/sin of [B, T, d].</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        long half = x.shape[^1] / 2;
        var x1 = x.narrow(-1, 0, half);
        var x2 = x.narrow(-1, half, half);
        var rotated = cat([-x2, x1], -1);
        var c = cos.unsqueeze(1);
        var s = sin.unsqueeze(1);
        return (x * c + rotated * s).MoveToOuterDisposeScope();
    }
}
