using System.Text.RegularExpressions;

namespace FinQLoRA.Adapters;

/// <summary>
/// One tensor name of a PEFT adapter file, parsed: <c>base_model.model.model.layers.{i}.{self_attn|mlp}.{proj}.{part}</c>
/// where part is <c>lora_A.weight</c>, <c>lora_B.weight</c> or DoRA's <c>lora_magnitude_vector</c>. Also accepted: the
/// adapter-name infix some PEFT versions keep (<c>lora_A.default.weight</c>, <c>lora_magnitude_vector.default.weight</c>),
/// a trailing <c>.weight</c> on the magnitude, and keys without the <c>base_model.model.</c> prefix.
/// </summary>
public sealed partial record PeftAdapterKey(int Layer, string Projection, string Part)
{
    public const string A = "lora_A";
    public const string B = "lora_B";
    public const string Magnitude = "lora_magnitude_vector";
    public const string Prefix = "base_model.model.";

    /// <summary>The key PEFT writes: <c>base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight</c>.</summary>
    public static string Canonical(string modulePath, string suffix) => Prefix + modulePath + "." + suffix;

    /// <summary>Parses a key, or returns null with the reason it is not an adapter key we can load.</summary>
    public static PeftAdapterKey? TryParse(string key, out string why)
    {
        why = "";
        var m = KeyPattern().Match(key);
        if (!m.Success)
        {
            why = $"expected {Prefix}model.layers.<i>.self_attn|mlp.<proj>.lora_A.weight / lora_B.weight / lora_magnitude_vector";
            return null;
        }
        string section = m.Groups["section"].Value, projection = m.Groups["proj"].Value, part = m.Groups["part"].Value;
        if (!LoraTargets.All.Contains(projection) || LoraTargets.IsAttention(projection) != (section == "self_attn"))
        {
            why = $"'{section}.{projection}' is not a projection of a Llama block ({string.Join(", ", LoraTargets.All)})";
            return null;
        }
        var tail = m.Groups["tail"].Value.Split('.', StringSplitOptions.RemoveEmptyEntries).ToList();
        bool endsWithWeight = tail.Count > 0 && tail[^1] == "weight";
        if (endsWithWeight) tail.RemoveAt(tail.Count - 1);
        bool ok = tail.Count <= 1 && (part == Magnitude || endsWithWeight); // at most an adapter-name infix
        if (!ok)
        {
            why = part == Magnitude ? "unexpected suffix after lora_magnitude_vector" : $"{part} keys end in '.weight' (a bias or extra suffix is not supported)";
            return null;
        }
        return new PeftAdapterKey(int.Parse(m.Groups["layer"].Value), projection, part);
    }

    [GeneratedRegex(@"^(?:base_model\.model\.)?model\.layers\.(?<layer>\d+)\.(?<section>self_attn|mlp)\.(?<proj>[A-Za-z0-9_]+)\.(?<part>lora_A|lora_B|lora_magnitude_vector)(?<tail>(?:\.[A-Za-z0-9_-]+)*)$")]
    private static partial Regex KeyPattern();
}
