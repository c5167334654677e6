using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Models.Reference;

/// <summary>
/// transformers' <c>modeling_rope_utils.py</c> for the rope types the families use, in fp32 torch operations as there
/// (the inverse frequencies are a float32 tensor; the attention factor a Python float multiplying cos and sin):
/// <c>_compute_default_rope_parameters</c>, <c>_compute_linear_scaling_rope_parameters</c>,
/// <c>_compute_llama3_parameters</c>, <c>_compute_yarn_parameters</c> (as after transformers#40320: an explicit
/// <c>factor</c> wins over max/original, the correction range uses <c>original_max_position_embeddings</c>) and
/// <c>_compute_longrope_parameters</c> with <c>dynamic_rope_update</c>'s switch to the long factors when the sequence
/// (max position + 1) outgrows the original context.
/// </summary>
public static class HfRope
{
    /// <summary>(inv_freq [dim/2] fp32, attention_scaling) for a forward whose positions reach <paramref name="seqLen"/> − 1.</summary>
    public static (Tensor InvFreq, double AttentionScaling) Init(HfArchitecture a, double theta, JsonObject? scaling, long seqLen)
    {
        int dim = (int)(a.HeadDim * a.PartialRotaryFactor);
        string type = (string?)(scaling?["rope_type"] ?? scaling?["type"]) ?? "default";
        if (a.ModelType == "phi3" && type is "su" or "yarn") type = "longrope";  // Phi3Config's backward compatibility
        double Get(string key) => scaling![key]!.GetValue<double>();
        double? Opt(string key) => scaling?[key] is JsonValue v ? v.GetValue<double>() : null;
        switch (type)
        {
            case "default":
                return (Default(theta, dim), 1.0);
            case "linear":
                return (Default(theta, dim) / Get("factor"), 1.0);
            case "llama3":
                return (Llama3(Default(theta, dim), Get("factor"), Get("low_freq_factor"), Get("high_freq_factor"), Get("original_max_position_embeddings")), 1.0);
            case "yarn":
            {
                double original = Opt("original_max_position_embeddings") ?? a.OriginalMaxPositions ?? a.MaxPositions;
                double factor = Opt("factor") ?? a.MaxPositions / original;
                double? mscale = Opt("mscale"), mscaleAllDim = Opt("mscale_all_dim");
                static double GetMscale(double scale, double m = 1) => scale <= 1 ? 1.0 : 0.1 * m * Math.Log(scale) + 1.0;
                double attention = Opt("attention_factor")
                    ?? (mscale is double m && m != 0 && mscaleAllDim is double all && all != 0 ? GetMscale(factor, m) / GetMscale(factor, all) : GetMscale(factor));
                double betaFast = Opt("beta_fast") is double bf && bf != 0 ? bf : 32;
                double betaSlow = Opt("beta_slow") is double bs && bs != 0 ? bs : 1;
                bool truncate = scaling?["truncate"] is JsonValue tv ? tv.GetValue<bool>() : true;
                double CorrectionDim(double rotations) => dim * Math.Log(original / (rotations * 2 * Math.PI)) / (2 * Math.Log(theta));
                double low = CorrectionDim(betaFast), high = CorrectionDim(betaSlow);
                if (truncate) { low = Math.Floor(low); high = Math.Ceiling(high); }
                low = Math.Max(low, 0); high = Math.Min(high, dim - 1);
                if (low == high) high += 0.001;
                var posFreqs = Pow(theta, arange(0, dim, 2, ScalarType.Float32) / dim);
                var extrapolation = 1.0 / posFreqs;
                var interpolation = 1.0 / (factor * posFreqs);
                var ramp = ((arange(dim / 2, ScalarType.Float32) - low) / (high - low)).clamp(0, 1);
                var extrapolationFactor = 1 - ramp;
                return (interpolation * (1 - extrapolationFactor) + extrapolation * extrapolationFactor, attention);
            }
            case "longrope":
            {
                double original = Opt("original_max_position_embeddings") ?? a.OriginalMaxPositions ?? a.MaxPositions;
                double factor = Opt("factor") ?? a.MaxPositions / original;
                double attention = Opt("attention_factor") ?? (factor <= 1 ? 1.0 : Math.Sqrt(1 + Math.Log(factor) / Math.Log(original)));
                var ext = tensor(((JsonArray)scaling![seqLen > original ? "long_factor" : "short_factor"]!).Select(x => (float)x!.GetValue<double>()).ToArray());
                var shape = arange(0, dim, 2, ScalarType.Int64).to(ScalarType.Float32) / dim;
                return (1.0 / (ext * Pow(theta, shape)), attention);
            }
            default:
                throw new NotSupportedException($"rope type '{type}' is not in the reference");
        }
    }

    /// <summary>cos, sin [T, dim] (fp32, already times the attention scaling) for positions 0..T−1, as the families'
    /// RotaryEmbedding.forward: freqs = positions ⊗ inv_freq, emb = cat(freqs, freqs).</summary>
    public static (Tensor Cos, Tensor Sin) CosSin(Tensor invFreq, double attentionScaling, long t)
    {
        var positions = arange(t, ScalarType.Float32);
        var freqs = positions.view(t, 1) * invFreq.view(1, -1);
        var emb = cat([freqs, freqs], -1);
        return (emb.cos() * attentionScaling, emb.sin() * attentionScaling);
    }

    private static Tensor Default(double theta, int dim) => 1.0 / Pow(theta, arange(0, dim, 2, ScalarType.Int64).to(ScalarType.Float32) / dim);

    /// <summary><c>base ** exponent</c> with a Python float base and a float32 tensor: the base becomes float32.</summary>
    private static Tensor Pow(double theta, Tensor exponent) => full_like(exponent, theta).pow(exponent);

    private static Tensor Llama3(Tensor invFreq, double factor, double lowFreqFactor, double highFreqFactor, double oldContextLen)
    {
        double lowFreqWavelen = oldContextLen / lowFreqFactor;
        double highFreqWavelen = oldContextLen / highFreqFactor;
        var wavelen = 2 * Math.PI / invFreq;
        var llama = where(wavelen > lowFreqWavelen, invFreq / factor, invFreq);
        var smooth = (oldContextLen / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
        var smoothed = (1 - smooth) * llama / factor + smooth * llama;
        var medium = (wavelen < highFreqWavelen).logical_not().logical_and((wavelen > lowFreqWavelen).logical_not());
        return where(medium, smoothed, llama);
    }
}
