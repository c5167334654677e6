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

    public RotaryEmbedding(ModelConfig config) => _invFreq = InverseFrequencies(config);

    /// <summary>The d/2 inverse frequencies, computed in fp32 as Hugging Face does (so that our logits match
    /// transformers' bit for bit where possible), then rescaled by Llama 3's RoPE scaling if the config has it.</summary>
    public static float[] InverseFrequencies(ModelConfig config)
    {
        int half = config.HeadDim / 2;
        var inv = new double[half];
        for (int i = 0; i < half; i++)
            inv[i] = 1.0f / MathF.Pow((float)config.RopeTheta, (2 * i) / (float)config.HeadDim);
        if (config.RopeScaling != null) inv = config.RopeScaling.Apply(inv);
        return inv.Select(v => (float)v).ToArray();
    }

    /// <summary>
    /// cos and the signed sin for integer positions [B, T], each [B, 1, T, headDim] in <paramref name="dtype"/>, made once
    /// per forward and shared by every layer's q and k: cos = [cos θ, cos θ], sin = [−sin θ, sin θ], so that
    /// <see cref="Apply"/> needs no negation. (Negating the sine instead of the rotated half gives the same bits:
    /// IEEE products are sign-symmetric.)
    /// </summary>
    public (Tensor Cos, Tensor Sin) CosSin(Tensor positions, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var inv = tensor(_invFreq, device: positions.device);
        var freqs = positions.to(ScalarType.Float32).unsqueeze(-1) * inv;       // [B, T, d/2]
        var c = freqs.cos();
        var s = freqs.sin();
        var cos = cat([c, c], -1).to(dtype).unsqueeze(1);                       // [B, 1, T, d]
        var sin = cat([-s, s], -1).to(dtype).unsqueeze(1);
        return (cos.MoveToOuterDisposeScope(), sin.MoveToOuterDisposeScope());
    }

    /// <summary>x·cos + rotate_half(x)·sin for x of shape [B, heads, T, d], with rotate_half(x) = [−x₂, x₁] written as
    /// [x₂, x₁] times the signed sin of <see cref="CosSin"/>.</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        long half = x.shape[^1] / 2;
        var swapped = cat([x.narrow(-1, half, half), x.narrow(-1, 0, half)], -1);
        return (x * cos + swapped * sin).MoveToOuterDisposeScope();
    }
}
