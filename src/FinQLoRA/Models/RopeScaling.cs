using System.Text.Json.Nodes;

namespace FinQLoRA.Models;

/// <summary>
/// <c>rope_scaling</c> of a config.json: <c>llama3</c> (Llama 3.1–3.3), <c>linear</c> (Gemma 3's global layers),
/// <c>yarn</c> (Qwen2.5's long context) and <c>longrope</c>/<c>su</c> (Phi-3/4), each computed as transformers'
/// <c>modeling_rope_utils</c> does; <c>default</c> is none. Others (dynamic, …) are refused by name rather than ignored.
/// </summary>
public sealed record RopeScaling(string Type, double Factor, double LowFreqFactor, double HighFreqFactor, int OriginalMaxPositionEmbeddings)
{
    public static IReadOnlyList<string> Types { get; } = ["llama3", "linear", "yarn", "longrope"];

    /// <summary>YaRN's ramp bounds (rotations per original context).</summary>
    public double BetaFast { get; init; } = 32;
    public double BetaSlow { get; init; } = 1;
    /// <summary>The factor cos and sin are multiplied by (YaRN's and LongRoPE's attention scaling); null = the type's rule.</summary>
    public double? AttentionFactor { get; init; }
    /// <summary>LongRoPE's per-frequency divisors for contexts up to, and beyond, the original length.</summary>
    public IReadOnlyList<double> ShortFactor { get; init; } = [];
    public IReadOnlyList<double> LongFactor { get; init; } = [];

    /// <param name="root">the whole config.json (LongRoPE's original length and YaRN's fallback live there)</param>
    public static RopeScaling? FromJson(JsonObject? o, string source, ModelConfig config, JsonObject? root = null)
    {
        if (o == null) return null;
        string type = (o["rope_type"] ?? o["type"])?.GetValue<string>() ?? "default";
        if (type == "su") type = "longrope";
        if (type == "default") return null;
        if (!Types.Contains(type))
            throw new UserInputException($"{source}: rope_scaling type '{type}' is not supported (supported: {string.Join(", ", Types)}, default)");
        double Get(string key) => o[key]?.GetValue<double>()
            ?? throw new UserInputException($"{source}: rope_scaling of type {type} needs '{key}'");
        double? Opt(string key) => o[key]?.GetValue<double>();
        // YaRN falls back on max_position_embeddings, LongRoPE on Phi3Config's default of 4096 (as transformers does)
        int original = (int)(Opt("original_max_position_embeddings") ?? root?["original_max_position_embeddings"]?.GetValue<double>()
            ?? (type is "longrope" ? 4096 : config.MaxPositionEmbeddings));
        return type switch
        {
            "llama3" => new RopeScaling(type, Get("factor"), Get("low_freq_factor"), Get("high_freq_factor"), (int)Get("original_max_position_embeddings")),
            "linear" => new RopeScaling(type, Get("factor"), 0, 0, original),
            "yarn" => new RopeScaling(type, Get("factor"), 0, 0, original)
            {
                BetaFast = Opt("beta_fast") ?? 32, BetaSlow = Opt("beta_slow") ?? 1, AttentionFactor = Opt("attention_factor"),
            },
            _ => LongRope(o, source, config, original),
        };
    }

    private static RopeScaling LongRope(JsonObject o, string source, ModelConfig config, int original)
    {
        double[] Factors(string key)
        {
            var list = (o[key] as JsonArray)?.Select(x => x!.GetValue<double>()).ToArray()
                ?? throw new UserInputException($"{source}: rope_scaling of type longrope needs '{key}'");
            if (list.Length != config.RotaryDim / 2)
                throw new UserInputException($"{source}: rope_scaling '{key}' has {list.Length} values but the rotated head dimension {config.RotaryDim} needs {config.RotaryDim / 2}");
            return list;
        }
        return new RopeScaling("longrope", (double)config.MaxPositionEmbeddings / original, 0, 0, original)
        {
            ShortFactor = Factors("short_factor"), LongFactor = Factors("long_factor"), AttentionFactor = o["attention_factor"]?.GetValue<double>(),
        };
    }

    public JsonObject ToJson()
    {
        var o = new JsonObject { ["rope_type"] = Type };
        switch (Type)
        {
            case "llama3":
                o["factor"] = Factor; o["low_freq_factor"] = LowFreqFactor; o["high_freq_factor"] = HighFreqFactor;
                o["original_max_position_embeddings"] = OriginalMaxPositionEmbeddings;
                break;
            case "linear":
                o["factor"] = Factor;
                break;
            case "yarn":
                o["factor"] = Factor; o["original_max_position_embeddings"] = OriginalMaxPositionEmbeddings;
                o["beta_fast"] = BetaFast; o["beta_slow"] = BetaSlow;
                if (AttentionFactor is double a) o["attention_factor"] = a;
                break;
            default:
                o["short_factor"] = new JsonArray(ShortFactor.Select(f => (JsonNode)f).ToArray());
                o["long_factor"] = new JsonArray(LongFactor.Select(f => (JsonNode)f).ToArray());
                if (AttentionFactor is double l) o["attention_factor"] = l;
                break;
        }
        return o;
    }

    /// <summary>Whether LongRoPE's long factors apply to a forward whose furthest position is <paramref name="maxPosition"/>
    /// (transformers switches when the sequence outgrows the original context).</summary>
    public bool UsesLongFactors(long maxPosition) => Type == "longrope" && maxPosition + 1 > OriginalMaxPositionEmbeddings;

    /// <summary>The scaled inverse frequencies of a rotated head of <paramref name="dim"/> dimensions over base
    /// <paramref name="plain"/> (1/θ^(2i/dim)); <paramref name="longFactors"/> picks LongRoPE's set.</summary>
    public double[] Apply(double[] plain, double theta, int dim, bool longFactors = false) => Type switch
    {
        "llama3" => Llama3(plain),
        "linear" => plain.Select(f => f / Factor).ToArray(),
        "yarn" => Yarn(plain, theta, dim),
        _ => plain.Select((f, i) => f / (longFactors ? LongFactor : ShortFactor)[i]).ToArray(),
    };

    /// <summary>What cos and sin are multiplied by: YaRN's 0.1·ln(factor) + 1, LongRoPE's √(1 + ln(factor)/ln(original)),
    /// unless the config states it; 1 for the others.</summary>
    public double CosSinScale => Type switch
    {
        "yarn" => AttentionFactor ?? (Factor <= 1 ? 1 : 0.1 * Math.Log(Factor) + 1),
        "longrope" => AttentionFactor ?? (Factor <= 1 ? 1 : Math.Sqrt(1 + Math.Log(Factor) / Math.Log(OriginalMaxPositionEmbeddings))),
        _ => 1,
    };

    /// <summary>Llama 3's frequency scaling (llama-models <c>apply_scaling</c>): long wavelengths are slowed by
    /// <see cref="Factor"/>, short ones kept, and the band between blended smoothly.</summary>
    private double[] Llama3(double[] invFreq)
    {
        double lowWavelen = OriginalMaxPositionEmbeddings / LowFreqFactor;
        double highWavelen = OriginalMaxPositionEmbeddings / HighFreqFactor;
        var result = new double[invFreq.Length];
        for (int i = 0; i < invFreq.Length; i++)
        {
            double wavelen = 2 * Math.PI / invFreq[i];
            if (wavelen < highWavelen) result[i] = invFreq[i];
            else if (wavelen > lowWavelen) result[i] = invFreq[i] / Factor;
            else
            {
                double smooth = (OriginalMaxPositionEmbeddings / wavelen - LowFreqFactor) / (HighFreqFactor - LowFreqFactor);
                result[i] = (1 - smooth) * invFreq[i] / Factor + smooth * invFreq[i];
            }
        }
        return result;
    }

    /// <summary>YaRN (transformers' <c>_compute_yarn_parameters</c>): frequencies that turn fewer than
    /// <see cref="BetaSlow"/> times over the original context are interpolated by the factor, those turning more than
    /// <see cref="BetaFast"/> times kept, with a linear ramp between.</summary>
    private double[] Yarn(double[] plain, double theta, int dim)
    {
        double CorrectionDim(double rotations) =>
            dim * Math.Log(OriginalMaxPositionEmbeddings / (rotations * 2 * Math.PI)) / (2 * Math.Log(theta));
        double low = Math.Max(Math.Floor(CorrectionDim(BetaFast)), 0);
        double high = Math.Min(Math.Ceiling(CorrectionDim(BetaSlow)), dim - 1);
        if (low == high) high += 0.001;
        var result = new double[plain.Length];
        for (int i = 0; i < plain.Length; i++)
        {
            double ramp = Math.Clamp((i - low) / (high - low), 0, 1);
            double extrapolation = 1 - ramp;
            result[i] = plain[i] / Factor * (1 - extrapolation) + plain[i] * extrapolation;
        }
        return result;
    }
}
