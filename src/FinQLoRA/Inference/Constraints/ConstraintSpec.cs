using System.Text.Encodings.Web;
using System.Text.Json;

namespace FinQLoRA.Inference.Constraints;

/// <summary>
/// What a request constrains its output to, in a canonical text that keys the compiled-constraint cache: a regex, a
/// JSON schema (re-serialized compactly, so the same schema written with other whitespace hits the same entry), any
/// JSON object, or one of a list of strings. <see cref="ToPattern"/> parses it (throwing
/// <see cref="ConstraintException"/> for anything unsupported).
/// </summary>
public sealed record ConstraintSpec
{
    /// <summary>How deep objects and arrays may nest in a <c>json_object</c> answer (the outer object is level 1):
    /// every level doubles the automaton.</summary>
    public const int JsonObjectDepth = 5;

    private static readonly JsonSerializerOptions Compact = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private ConstraintSpec(string kind, string text)
    {
        Kind = kind;
        Text = text;
    }

    /// <summary><c>regex</c>, <c>json_schema</c>, <c>json_object</c> or <c>choice</c>.</summary>
    public string Kind { get; }
    public string Text { get; }

    public static ConstraintSpec Regex(string regex) => new("regex", regex);

    public static ConstraintSpec JsonSchema(JsonElement schema) => new("json_schema", JsonSerializer.Serialize(schema, Compact));

    public static ConstraintSpec JsonObject() => new("json_object", "");

    /// <summary>Exactly one of <paramref name="choices"/>.</summary>
    public static ConstraintSpec Choice(IReadOnlyList<string> choices)
    {
        if (choices.Count == 0) throw new ConstraintException("'choice' must list at least one string");
        return new("choice", JsonSerializer.Serialize(choices, Compact));
    }

    public Pattern ToPattern()
    {
        if (Kind == "json_schema")
        {
            // the pattern keeps no element of the document (literals are copied as bytes), so it can go back to its pool
            using var schema = JsonDocument.Parse(Text);
            return JsonSchemaCompiler.Compile(schema.RootElement);
        }
        return Kind switch
        {
            "regex" => RegexParser.Parse(Text),
            "json_object" => JsonGrammar.ObjectOf(JsonGrammar.AnyValue(JsonObjectDepth - 1)),
            "choice" => Pattern.AnyOf(JsonSerializer.Deserialize<string[]>(Text)!.Select(Pattern.Literal)),
            _ => throw new InvalidOperationException(Kind),
        };
    }
}
