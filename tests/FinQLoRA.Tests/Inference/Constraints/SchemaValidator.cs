using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace FinQLoRA.Tests.Inference.Constraints;

/// <summary>
/// A JSON Schema validator for the structured-output subset, written apart from the compiler (from the JSON Schema
/// 2020-12 validation vocabulary): it checks a parsed value, not bytes, and reads patterns with .NET's Regex.
/// One deliberate addition follows the documented rule: a missing <c>additionalProperties</c> means false.
/// Returns null when the value validates, else where and why it does not.
/// </summary>
internal static class SchemaValidator
{
    public static string? Validate(JsonElement value, JsonElement schema) => Check(value, schema, schema, "$");

    private static string? Check(JsonElement v, JsonElement s, JsonElement root, string at)
    {
        if (s.ValueKind == JsonValueKind.True) return null;
        if (s.ValueKind == JsonValueKind.False) return $"{at}: schema false";
        if (s.TryGetProperty("$ref", out var r))
        {
            var parts = r.GetString()!.Split('/');
            return Check(v, root.GetProperty(parts[1]).GetProperty(parts[2]), root, at);
        }
        if (s.TryGetProperty("anyOf", out var anyOf))
            return anyOf.EnumerateArray().Any(b => Check(v, b, root, at) is null) ? null : $"{at}: no anyOf branch";
        if (s.TryGetProperty("allOf", out var allOf))
            return allOf.EnumerateArray().Select(b => Check(v, b, root, at)).FirstOrDefault(e => e is not null);
        if (s.TryGetProperty("enum", out var e) && !e.EnumerateArray().Any(x => JsonElement.DeepEquals(x, v))) return $"{at}: not in enum";
        if (s.TryGetProperty("const", out var c) && !JsonElement.DeepEquals(c, v)) return $"{at}: not the const";
        if (s.TryGetProperty("type", out var t))
        {
            var types = t.ValueKind == JsonValueKind.Array ? t.EnumerateArray().Select(x => x.GetString()!).ToList() : [t.GetString()!];
            if (!types.Any(type => Is(v, type))) return $"{at}: not of type {string.Join("/", types)}";
        }
        switch (v.ValueKind)
        {
            case JsonValueKind.String:
            {
                string text = v.GetString()!;
                int length = text.EnumerateRunes().Count();
                if (s.TryGetProperty("minLength", out var min) && length < min.GetInt32()) return $"{at}: shorter than minLength";
                if (s.TryGetProperty("maxLength", out var max) && length > max.GetInt32()) return $"{at}: longer than maxLength";
                if (s.TryGetProperty("pattern", out var p) && !new Regex(p.GetString()!, RegexOptions.ECMAScript).IsMatch(text)) return $"{at}: pattern";
                break;
            }
            case JsonValueKind.Array:
            {
                var items = v.EnumerateArray().ToList();
                if (s.TryGetProperty("minItems", out var min) && items.Count < min.GetInt32()) return $"{at}: fewer than minItems";
                if (s.TryGetProperty("maxItems", out var max) && items.Count > max.GetInt32()) return $"{at}: more than maxItems";
                if (s.TryGetProperty("items", out var itemSchema))
                    for (int i = 0; i < items.Count; i++)
                        if (Check(items[i], itemSchema, root, $"{at}[{i}]") is { } err) return err;
                break;
            }
            case JsonValueKind.Object when s.TryGetProperty("properties", out _) || s.TryGetProperty("required", out _) || Is(v, "object") && s.TryGetProperty("type", out _):
            {
                var props = s.TryGetProperty("properties", out var ps) ? ps.EnumerateObject().ToDictionary(x => x.Name, x => x.Value) : [];
                var names = v.EnumerateObject().Select(x => x.Name).ToList();
                if (names.Distinct().Count() != names.Count) return $"{at}: duplicate key";
                if (s.TryGetProperty("required", out var req))
                    foreach (var name in req.EnumerateArray().Select(x => x.GetString()!))
                        if (!names.Contains(name)) return $"{at}: missing required '{name}'";
                foreach (var member in v.EnumerateObject())
                {
                    if (!props.TryGetValue(member.Name, out var ms)) return $"{at}: additional property '{member.Name}'";
                    if (Check(member.Value, ms, root, $"{at}.{member.Name}") is { } err) return err;
                }
                break;
            }
        }
        return null;
    }

    private static bool Is(JsonElement v, string type) => type switch
    {
        "string" => v.ValueKind == JsonValueKind.String,
        "number" => v.ValueKind == JsonValueKind.Number,
        "integer" => v.ValueKind == JsonValueKind.Number && decimal.TryParse(v.GetRawText(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && d == Math.Truncate(d),
        "boolean" => v.ValueKind is JsonValueKind.True or JsonValueKind.False,
        "null" => v.ValueKind == JsonValueKind.Null,
        "array" => v.ValueKind == JsonValueKind.Array,
        "object" => v.ValueKind == JsonValueKind.Object,
        _ => throw new ArgumentException(type),
    };

    /// <summary>How deep objects and arrays nest in <paramref name="v"/> (a scalar is 0).</summary>
    public static int Depth(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.Object => 1 + v.EnumerateObject().Select(m => Depth(m.Value)).DefaultIfEmpty(0).Max(),
        JsonValueKind.Array => 1 + v.EnumerateArray().Select(Depth).DefaultIfEmpty(0).Max(),
        _ => 0,
    };
}
