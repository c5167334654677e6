using System.Text.Json.Nodes;

namespace FinQLoRA.Models.Families;

/// <summary>Typed reads of a config.json object: a wrong type or an impossible value is named with its key and the
/// file, not left for libtorch to trip over. Shared by the common fields and every family's own.</summary>
public sealed class ConfigJson(JsonObject o, string source)
{
    public JsonObject Object => o;
    public string Source => source;

    public bool Has(string key) => o[key] is not null;

    public int Required(string key) => o[key] is JsonValue v && v.TryGetValue(out int i) && i > 0
        ? i
        : throw new UserInputException($"{source}: '{key}' must be a positive integer (found {o[key]?.ToJsonString() ?? "nothing"})");

    public int Int(string key, int fallback) => o[key] is null ? fallback : Required(key);

    public int? OptionalInt(string key) => o[key] is null ? null : Required(key);

    /// <summary>transformers' default where the key is absent; null where it is written as null (a switch turned off).</summary>
    public int? OptionalInt(string key, int? whenAbsent) => o.ContainsKey(key) ? OptionalInt(key) : whenAbsent;

    /// <summary>transformers' default where the key is absent; null where it is written as null.</summary>
    public double? OptionalPositive(string key, double? whenAbsent) => o.ContainsKey(key) ? OptionalPositive(key) : whenAbsent;

    /// <summary>head_dim where the config states it, else the family's default (Gemma and Qwen3 do not derive it).</summary>
    public int HeadDim(ModelConfig c, int whenAbsent) => o.ContainsKey("head_dim") ? c.HeadDim : whenAbsent;

    public double Positive(string key, double fallback) => OptionalPositive(key) ?? fallback;

    public double? OptionalPositive(string key)
    {
        if (o[key] is null) return null;
        if (o[key] is JsonValue v && v.TryGetValue(out double d) && double.IsFinite(d) && d > 0) return d;
        throw new UserInputException($"{source}: '{key}' must be a positive number (found {o[key]!.ToJsonString()})");
    }

    public bool Flag(string key, bool fallback = false) => o[key] switch
    {
        null => fallback,
        JsonValue v when v.TryGetValue(out bool b) => b,
        var other => throw new UserInputException($"{source}: '{key}' must be true or false (found {other.ToJsonString()})"),
    };

    public string? String(string key) => o[key] switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out string? s) => s,
        var other => throw new UserInputException($"{source}: '{key}' must be a string (found {other.ToJsonString()})"),
    };

    /// <summary>A list of strings (<c>layer_types</c>), or null where the key is absent.</summary>
    public IReadOnlyList<string>? Strings(string key) => o[key] switch
    {
        null => null,
        JsonArray a when a.All(x => x is JsonValue v && v.TryGetValue(out string? _)) => a.Select(x => x!.GetValue<string>()).ToArray(),
        var other => throw new UserInputException($"{source}: '{key}' must be a list of strings (found {other.ToJsonString()})"),
    };
}
