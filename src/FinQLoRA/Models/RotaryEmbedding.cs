using FinQLoRA.Runtime;
using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>
/// Rotary position embeddings in Hugging Face's rotate-half layout: dimension i of the rotated part of a head is paired
/// with i + r/2 (GGUF's llama architecture and Meta checkpoints pair 2i with 2i+1; their q/k rows are permuted when
/// loaded). Frequencies are <c>1/θ^(2i/r)</c> over the rotated dimensions r (all of the head, or Phi's
/// partial_rotary_factor of it), optionally rescaled by a <see cref="RopeScaling"/>; dimensions past r pass unrotated.
/// </summary>
public sealed class RotaryEmbedding
{
    private readonly float[] _invFreq;
    private readonly float[]? _longInvFreq;
    private readonly RopeScaling? _scaling;
    private readonly double _scale;

    public RotaryEmbedding(ModelConfig config) : this(config.RopeTheta, config.RopeScaling, config.RotaryDim) { }

    public RotaryEmbedding(double theta, RopeScaling? scaling, int rotaryDim)
    {
        _scaling = scaling;
        _invFreq = InverseFrequencies(theta, scaling, rotaryDim);
        if (scaling?.Type == "longrope") _longInvFreq = InverseFrequencies(theta, scaling, rotaryDim, longFactors: true);
        _scale = scaling?.CosSinScale ?? 1.0;
        RotaryDim = rotaryDim;
    }

    public int RotaryDim { get; }

    /// <summary>The r/2 inverse frequencies, the plain ones computed in fp32 as Hugging Face does (so that our logits
    /// match transformers' bit for bit where possible), then rescaled by the config's RoPE scaling if it has one.</summary>
    public static float[] InverseFrequencies(ModelConfig config) => InverseFrequencies(config.RopeTheta, config.RopeScaling, config.RotaryDim);

    public static float[] InverseFrequencies(double theta, RopeScaling? scaling, int rotaryDim, bool longFactors = false)
    {
        int half = rotaryDim / 2;
        var inv = new double[half];
        for (int i = 0; i < half; i++)
            inv[i] = 1.0f / MathF.Pow((float)theta, (2 * i) / (float)rotaryDim);
        if (scaling != null) inv = scaling.Apply(inv, theta, rotaryDim, longFactors);
        return inv.Select(v => (float)v).ToArray();
    }

    /// <summary>
    /// cos and the signed sin for integer positions [B, T], each [B, 1, T, r] in <paramref name="dtype"/>, made once
    /// per forward and shared by every layer's q and k: cos = [cos θ, cos θ], sin = [−sin θ, sin θ], so that
    /// <see cref="Apply"/> needs no negation. (Negating the sine instead of the rotated half gives the same bits:
    /// IEEE products are sign-symmetric.) YaRN and LongRoPE scale both by their attention factor, as transformers does.
    /// </summary>
    public (Tensor Cos, Tensor Sin) CosSin(Tensor positions, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var frequencies = _longInvFreq != null && _scaling!.UsesLongFactors(positions.max().item<long>()) ? _longInvFreq : _invFreq;
        var inv = tensor(frequencies, device: positions.device);
        var freqs = positions.to(ScalarType.Float32).unsqueeze(-1) * inv;       // [B, T, r/2]
        var c = freqs.cos();
        var s = freqs.sin();
        if (_scale != 1.0) { c = c * _scale; s = s * _scale; }
        var cos = cat([c, c], -1).to(dtype).unsqueeze(1);                       // [B, 1, T, r]
        var sin = cat([-s, s], -1).to(dtype).unsqueeze(1);
        return (cos.MoveToOuterDisposeScope(), sin.MoveToOuterDisposeScope());
    }

    /// <summary>x·cos + rotate_half(x)·sin over the first r dimensions of x [B, heads, T, d], with rotate_half(x) =
    /// [−x₂, x₁] written as [x₂, x₁] times the signed sin of <see cref="CosSin"/>; dimensions r..d are kept.</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        long d = x.shape[^1], r = cos.shape[^1];
        if (r == d && TrainingFusions.Enabled && x.requires_grad && is_grad_enabled() && !cos.requires_grad && !sin.requires_grad)
            return RotaryFunction.Apply(x, cos, sin).MoveToOuterDisposeScope();
        var rotated = r == d ? x : x.narrow(-1, 0, r);
        long half = r / 2;
        var swapped = cat([rotated.narrow(-1, half, half), rotated.narrow(-1, 0, half)], -1);
        var result = rotated * cos + swapped * sin;
        if (r != d) result = cat([result, x.narrow(-1, r, d - r)], -1);
        return result.MoveToOuterDisposeScope();
    }
}
