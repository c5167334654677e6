using System.Text.Json;

namespace FinQLoRA.Inference.Constraints;

/// <summary>
/// Compiles the JSON Schema subset of structured outputs into a <see cref="Pattern"/> of the JSON texts that validate,
/// written with <see cref="JsonGrammar"/>'s bounded whitespace. Supported: <c>type</c> (a name or a list),
/// objects (<c>properties</c> written in the schema's order, <c>required</c>; the optional ones may be left out;
/// <c>additionalProperties</c> false or absent, and absent reads as false: only the listed properties are written),
/// strings (<c>enum</c>, <c>const</c>, <c>pattern</c>, <c>minLength</c>, <c>maxLength</c>), numbers, integers,
/// booleans, null, arrays (<c>items</c>, <c>minItems</c>, <c>maxItems</c>), <c>enum</c> / <c>const</c> of any JSON
/// value, <c>anyOf</c>, <c>allOf</c> of exactly one schema, <c>$defs</c> / <c>definitions</c> with
/// <c>$ref</c> "#/$defs/x" (not recursive), and the annotations <see cref="Annotations"/>, which change nothing.
/// Every other keyword, a recursive <c>$ref</c>, a keyword on a type it does not apply to, and a schema no value
/// satisfies are refused with the JSON pointer path of the schema at fault. A schema with no type-giving keyword
/// stands for any value nested at most <see cref="AnyValueDepth"/> deep.
/// </summary>
public sealed class JsonSchemaCompiler
{
    /// <summary>How deep objects and arrays may nest where a schema allows any value (<c>{}</c>, <c>true</c>, an array
    /// without <c>items</c>): each level doubles the automaton, so the bound is small.</summary>
    public const int AnyValueDepth = 3;

    public static readonly IReadOnlySet<string> Annotations = new HashSet<string> { "title", "description", "$schema", "$id", "default", "examples", "$comment" };

    private static readonly Dictionary<string, string[]> KeywordTypes = new()
    {
        ["properties"] = ["object"], ["required"] = ["object"], ["additionalProperties"] = ["object"],
        ["items"] = ["array"], ["minItems"] = ["array"], ["maxItems"] = ["array"],
        ["pattern"] = ["string"], ["minLength"] = ["string"], ["maxLength"] = ["string"],
    };
    private static readonly HashSet<string> Structural = ["type", "enum", "const", "anyOf", "allOf", "$ref", "$defs", "definitions"];
    private static readonly string[] TypeNames = ["object", "array", "string", "number", "integer", "boolean", "null"];

    private readonly JsonElement _root;
    private readonly List<string> _activeRefs = [];

    private JsonSchemaCompiler(JsonElement root) => _root = root;

    public static Pattern Compile(JsonElement schema) => new JsonSchemaCompiler(schema).Schema(schema, "#");

    private Pattern Schema(JsonElement s, string path)
    {
        if (s.ValueKind == JsonValueKind.True) return JsonGrammar.AnyValue(AnyValueDepth);
        if (s.ValueKind == JsonValueKind.False) return Pattern.Nothing;
        if (s.ValueKind != JsonValueKind.Object) throw ConstraintException.InSchema("a schema must be an object or a boolean", path);

        var keywords = new List<string>();
        foreach (var p in s.EnumerateObject())
        {
            if (Annotations.Contains(p.Name)) continue;
            if (!Structural.Contains(p.Name) && !KeywordTypes.ContainsKey(p.Name))
                throw ConstraintException.InSchema($"unsupported JSON Schema keyword '{p.Name}'", path, Hint(p.Name));
            if (p.Name is not ("$defs" or "definitions")) keywords.Add(p.Name);
        }
        foreach (string combinator in new[] { "$ref", "anyOf", "allOf" })
            if (keywords.Contains(combinator) && keywords.Count > 1)
                throw ConstraintException.InSchema($"'{keywords.First(k => k != combinator)}' next to '{combinator}' is not supported", path, "move it into the referenced or listed schemas");

        if (s.TryGetProperty("$ref", out var reference)) return Ref(reference, path);
        if (s.TryGetProperty("anyOf", out var anyOf))
            return Pattern.AnyOf(List(anyOf, "anyOf", path).Select((b, i) => Schema(b, $"{path}/anyOf/{i}")));
        if (s.TryGetProperty("allOf", out var allOf))
        {
            var list = List(allOf, "allOf", path);
            if (list.Count != 1) throw ConstraintException.InSchema("'allOf' with other than exactly one schema is not supported", path);
            return Schema(list[0], $"{path}/allOf/0");
        }

        var types = Types(s, keywords, path);
        foreach (string k in keywords)
            if (KeywordTypes.TryGetValue(k, out var appliesTo) && !appliesTo.Intersect(types).Any())
                throw ConstraintException.InSchema($"keyword '{k}' does not apply to type {string.Join(" or ", types.Select(t => $"'{t}'"))}", path);

        bool hasEnum = s.TryGetProperty("enum", out var enumValues), hasConst = s.TryGetProperty("const", out var constValue);
        if (hasEnum || hasConst)
        {
            if (hasEnum && hasConst) throw ConstraintException.InSchema("'enum' together with 'const' is not supported", path);
            if (keywords.FirstOrDefault(k => k is not ("type" or "enum" or "const")) is { } other)
                throw ConstraintException.InSchema($"'{other}' together with '{(hasEnum ? "enum" : "const")}' is not supported", path, "list only the values that satisfy it");
            var values = hasEnum ? List(enumValues, "enum", path) : [constValue];
            bool typed = s.TryGetProperty("type", out _);
            return Pattern.AnyOf(values.Where(v => !typed || types.Contains(TypeOf(v)) || (TypeOf(v) == "integer" && types.Contains("number"))).Select(JsonGrammar.Literal));
        }
        return Pattern.AnyOf(types.Select(t => Typed(t, s, path)));
    }

    private static string? Hint(string keyword) => keyword switch
    {
        "oneOf" => "its branches are not checked to exclude each other; use anyOf",
        "minimum" or "maximum" or "exclusiveMinimum" or "exclusiveMaximum" or "multipleOf" => "numeric bounds are not enforced",
        "format" => "use 'pattern'",
        _ => null,
    };

    /// <summary>The types a schema allows: its <c>type</c>; else what its keywords imply; else every type.</summary>
    private static List<string> Types(JsonElement s, List<string> keywords, string path)
    {
        if (s.TryGetProperty("type", out var type))
        {
            var names = type.ValueKind switch
            {
                JsonValueKind.String => [type.GetString()!],
                JsonValueKind.Array when type.EnumerateArray().All(t => t.ValueKind == JsonValueKind.String) => type.EnumerateArray().Select(t => t.GetString()!).ToList(),
                _ => throw ConstraintException.InSchema("'type' must be a type name or a list of them", path),
            };
            foreach (string n in names)
                if (!TypeNames.Contains(n)) throw ConstraintException.InSchema($"unknown type '{n}'", path + "/type", $"one of {string.Join(", ", TypeNames)}");
            return names.Distinct().ToList();
        }
        var implied = keywords.Where(KeywordTypes.ContainsKey).SelectMany(k => KeywordTypes[k]).Distinct().ToList();
        if (implied.Count > 0) return implied;
        return s.TryGetProperty("enum", out _) || s.TryGetProperty("const", out _) ? [.. TypeNames] : ["any"];
    }

    private Pattern Typed(string type, JsonElement s, string path) => type switch
    {
        "any" => JsonGrammar.AnyValue(AnyValueDepth),
        "string" => StringSchema(s, path),
        "number" => JsonGrammar.Number,
        "integer" => JsonGrammar.Integer,
        "boolean" => JsonGrammar.Boolean,
        "null" => JsonGrammar.Null,
        "array" => ArraySchema(s, path),
        "object" => ObjectSchema(s, path),
        _ => throw new InvalidOperationException(type),
    };

    private static Pattern StringSchema(JsonElement s, string path)
    {
        int min = Count(s, "minLength", path) ?? 0;
        int? max = Count(s, "maxLength", path);
        if (!s.TryGetProperty("pattern", out var pattern)) return max < min ? Pattern.Nothing : JsonGrammar.String(min, max);
        if (s.TryGetProperty("minLength", out _) || s.TryGetProperty("maxLength", out _))
            throw ConstraintException.InSchema("'pattern' together with 'minLength' or 'maxLength' is not supported", path, "put the length into the pattern");
        if (pattern.ValueKind != JsonValueKind.String) throw ConstraintException.InSchema("'pattern' must be a string", path);
        string regex = pattern.GetString()!;
        Pattern parsed;
        try { parsed = RegexParser.Parse(regex); }
        catch (ConstraintException e) { throw ConstraintException.InSchema($"pattern: {e.Message}", path + "/pattern"); }
        // JSON Schema patterns match anywhere in the string unless anchored; characters that JSON would have to escape
        // are never generated (a subset of the valid strings, each written as is)
        var anyChars = new Pattern.Repeat(new Pattern.Chars(JsonGrammar.Unescaped), 0, null);
        bool anchoredEnd = regex.EndsWith('$') && (regex.Length - 1 - regex[..^1].TrimEnd('\\').Length) % 2 == 0;
        var content = Pattern.Of(regex.StartsWith('^') ? Pattern.Empty : anyChars, parsed.Restrict(JsonGrammar.Unescaped), anchoredEnd ? Pattern.Empty : anyChars);
        return JsonGrammar.Quoted(content);
    }

    private Pattern ArraySchema(JsonElement s, string path)
    {
        int min = Count(s, "minItems", path) ?? 0;
        int? max = Count(s, "maxItems", path);
        if (max < min) return Pattern.Nothing;
        Pattern item = JsonGrammar.AnyValue(AnyValueDepth);
        if (s.TryGetProperty("items", out var items))
        {
            if (items.ValueKind == JsonValueKind.Array) throw ConstraintException.InSchema("'items' as a list (tuple validation) is not supported", path);
            item = Schema(items, path + "/items");
        }
        return JsonGrammar.Array(item, min, max);
    }

    private Pattern ObjectSchema(JsonElement s, string path)
    {
        if (s.TryGetProperty("additionalProperties", out var additional) && additional.ValueKind != JsonValueKind.False)
            throw ConstraintException.InSchema("'additionalProperties' other than false is not supported", path, "list every property under 'properties'");
        var required = new HashSet<string>();
        if (s.TryGetProperty("required", out var req))
        {
            if (req.ValueKind != JsonValueKind.Array || req.EnumerateArray().Any(r => r.ValueKind != JsonValueKind.String))
                throw ConstraintException.InSchema("'required' must be a list of property names", path);
            required = req.EnumerateArray().Select(r => r.GetString()!).ToHashSet();
        }
        var members = new List<(string, Pattern, bool)>();
        if (s.TryGetProperty("properties", out var properties))
        {
            if (properties.ValueKind != JsonValueKind.Object) throw ConstraintException.InSchema("'properties' must be an object", path);
            foreach (var p in properties.EnumerateObject())
                members.Add((p.Name, Schema(p.Value, $"{path}/properties/{Pointer(p.Name)}"), required.Contains(p.Name)));
        }
        if (required.FirstOrDefault(r => !members.Any(m => m.Item1 == r)) is { } missing)
            throw ConstraintException.InSchema($"required property '{missing}' is not under 'properties'", path, "additional properties are not generated");
        return JsonGrammar.Object(members);
    }

    private Pattern Ref(JsonElement reference, string path)
    {
        if (reference.ValueKind != JsonValueKind.String) throw ConstraintException.InSchema("'$ref' must be a string", path);
        string target = reference.GetString()!;
        string[] parts = target.Split('/');
        if (parts.Length != 3 || parts[0] != "#" || parts[1] is not ("$defs" or "definitions"))
            throw ConstraintException.InSchema($"$ref '{target}' is not supported", path, "only '#/$defs/name' and '#/definitions/name'");
        string name = parts[2].Replace("~1", "/").Replace("~0", "~");
        if (_root.ValueKind != JsonValueKind.Object || !_root.TryGetProperty(parts[1], out var defs) || defs.ValueKind != JsonValueKind.Object
            || !defs.TryGetProperty(name, out var definition))
            throw ConstraintException.InSchema($"$ref '{target}' names no definition", path);
        if (_activeRefs.Contains(target))
            throw ConstraintException.InSchema($"recursive $ref '{target}' is not supported", path);
        _activeRefs.Add(target);
        try { return Schema(definition, target); }
        finally { _activeRefs.RemoveAt(_activeRefs.Count - 1); }
    }

    private static List<JsonElement> List(JsonElement value, string keyword, string path)
    {
        if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() == 0)
            throw ConstraintException.InSchema($"'{keyword}' must be a non-empty list", path);
        return value.EnumerateArray().ToList();
    }

    private static int? Count(JsonElement s, string keyword, string path)
    {
        if (!s.TryGetProperty(keyword, out var v)) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int n) || n < 0)
            throw ConstraintException.InSchema($"'{keyword}' must be a non-negative integer", path);
        return n;
    }

    private static string TypeOf(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.String => "string",
        JsonValueKind.Number => v.TryGetInt64(out _) ? "integer" : "number",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        JsonValueKind.Null => "null",
        JsonValueKind.Array => "array",
        _ => "object",
    };

    private static string Pointer(string name) => name.Replace("~", "~0").Replace("/", "~1");
}
