using System.Text.Json;

namespace FinQLoRA.Server.Common;

/// <summary>The checks a bound request's fields get beyond their JSON type: required, ranges, OpenAI's
/// string-or-list unions and fields we accept only at their neutral value. Each error names the field (400).</summary>
internal static class RequestFields
{
    public static string Required(string? value, string name) =>
        value ?? throw new ApiException(400, $"'{name}' is required", name, "missing_required_parameter");

    /// <summary>A union field (<see cref="JsonElement"/>) with JSON null read as absent.</summary>
    public static JsonElement? Present(JsonElement? value) =>
        value is { ValueKind: not (JsonValueKind.Null or JsonValueKind.Undefined) } v ? v : null;

    public static int? InRange(long? value, string name, int min, int max)
    {
        if (value is not { } x) return null;
        if (x < min || x > max) throw new ApiException(400, $"'{name}' must be in [{min}, {max}] (got {x})", name);
        return (int)x;
    }

    public static double? InRange(double? value, string name, double min, double max)
    {
        if (value is not { } x) return null;
        if (x < min || x > max) throw new ApiException(400, $"'{name}' must be in [{min}, {max}] (got {x})", name);
        return x;
    }

    /// <summary>A string or a list of strings (OpenAI's <c>stop</c>).</summary>
    public static IReadOnlyList<string> StringOrList(JsonElement? value, string name, int maxItems)
    {
        switch (Present(value))
        {
            case null: return [];
            case { ValueKind: JsonValueKind.String } v: return [v.GetString()!];
            case { ValueKind: JsonValueKind.Array } a:
                var list = a.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.String ? e.GetString()! : throw RequestJson.Wrong(name, "a string or a list of strings")).ToList();
                if (list.Count > maxItems) throw new ApiException(400, $"'{name}' takes at most {maxItems} entries (got {list.Count})", name);
                return list;
            default: throw RequestJson.Wrong(name, "a string or a list of strings");
        }
    }

    /// <summary>Refuses a field we do not implement unless it has its neutral value.</summary>
    public static void Unsupported(JsonElement? value, string name, Func<JsonElement, bool> neutral)
    {
        if (Present(value) is { } v && !neutral(v)) throw new ApiException(400, $"'{name}' is not supported by this server", name, "unsupported_parameter");
    }

    /// <summary>OpenAI's <c>stream_options.include_usage</c>, read leniently as always: anything but
    /// <c>{"include_usage": true}</c> means no usage chunk.</summary>
    public static bool WantsUsage(JsonElement? streamOptions) =>
        Present(streamOptions) is { ValueKind: JsonValueKind.Object } o
        && o.TryGetProperty("include_usage", out var iu) && iu.ValueKind == JsonValueKind.True;
}
