using System.Text.Json.Nodes;

namespace FinQLoRA.Models;

/// <summary>
/// <c>rope_scaling</c> of a config.json. Only <c>llama3</c> (Llama 3.1/3.2) and <c>default</c> are supported;
/// others (linear, dynamic, yarn) are rejected by name rather than silently ignored.
/// </summary>
public sealed record RopeScaling(string Type, double Factor, double LowFreqFactor, double HighFreqFactor, int OriginalMaxPositionEmbeddings)
{
    public static RopeScaling? FromJson(JsonObject? o, string source)
    {
        if (o == null) return null;
        string type = (o["rope_type"] ?? o["type"])?.GetValue<string>() ?? "default";
        if (type == "default") return null;
        if (type != "llama3")
            throw new UserInputException($"{source}: rope_scaling type '{type}' is not supported (supported: llama3, default)");
        double Get(string key) => o[key]?.GetValue<double>()
            ?? throw new UserInputException($"{source}: rope_scaling of type llama3 needs '{key}'");
        return new RopeScaling(type, Get("factor"), Get("low_freq_factor"), Get("high_freq_factor"),
            (int)Get("original_max_position_embeddings"));
    }

    public JsonObject ToJson() => new()
    {
        ["rope_type"] = Type,
        ["factor"] = Factor,
        ["low_freq_factor"] = LowFreqFactor,
        ["high_freq_factor"] = HighFreqFactor,
        ["original_max_position_embeddings"] = OriginalMaxPositionEmbeddings,
    };

    /// <summary>Llama 3's frequency scaling (llama-models <c>apply_scaling</c>): long wavelengths are slowed by
    /// <see cref="Factor"/>, short ones kept, and the band between blended smoothly.</summary>
    public double[] Apply(double[] invFreq)
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
}
