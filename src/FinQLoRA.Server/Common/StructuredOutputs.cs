using System.Text.Json;
using FinQLoRA.Inference.Constraints;
using FinQLoRA.Serving;

namespace FinQLoRA.Server.Common;

/// <summary>
/// Reads a request's structured-output fields into a compiled constraint for the engine's tokenizer, before anything
/// is queued: OpenAI's <c>response_format</c> (<c>text</c>, <c>json_object</c>, <c>json_schema</c> with
/// <c>{name, schema, strict}</c>; chat only) and vLLM's <c>structured_outputs</c> (exactly one of <c>choice</c>,
/// <c>regex</c>, <c>json</c>: a schema or a schema in a string). Every problem with them, an unsupported schema keyword
/// or a regex construct included, is a 400 naming the field; compiled constraints are cached per tokenizer.
/// </summary>
internal static class StructuredOutputs
{
    private const string Code = "invalid_structured_output";
    private static readonly string[] VllmKinds = ["choice", "regex", "json"];

    /// <param name="endIds">tokens that may end a whole value besides EOS (a chat format's end of turn)</param>
    /// <returns>null for free text</returns>
    public static CompiledConstraint? Read(JsonElement? responseFormat, JsonElement? structuredOutputs, ServingEngine engine, IReadOnlyList<int>? endIds)
    {
        var fromFormat = FromResponseFormat(responseFormat);
        var fromVllm = FromStructuredOutputs(structuredOutputs);
        if (fromFormat is not null && fromVllm is not null)
            throw new ApiException(400, "give 'response_format' or 'structured_outputs', not both", "structured_outputs", Code);
        if ((fromFormat ?? fromVllm) is not var (spec, param)) return null;
        try { return ConstraintCache.For(engine.Tokenizer).Get(spec, endIds); }
        catch (ConstraintException e) { throw new ApiException(400, $"{param}: {e.Message}", param, Code); }
    }

    private static (ConstraintSpec, string)? FromResponseFormat(JsonElement? value)
    {
        if (RequestFields.Present(value) is not { } format) return null;
        if (format.ValueKind != JsonValueKind.Object || !format.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String)
            throw RequestJson.Wrong("response_format", "an object with a 'type' (text, json_object or json_schema)");
        switch (type.GetString())
        {
            case "text": return null;
            case "json_object": return (ConstraintSpec.JsonObject(), "response_format");
            case "json_schema":
                if (!format.TryGetProperty("json_schema", out var js) || js.ValueKind != JsonValueKind.Object)
                    throw new ApiException(400, "'response_format.json_schema' must be an object with 'name' and 'schema'", "response_format.json_schema", "missing_required_parameter");
                if (js.TryGetProperty("name", out var name) && name.ValueKind != JsonValueKind.String)
                    throw RequestJson.Wrong("response_format.json_schema.name", "a string");
                if (js.TryGetProperty("strict", out var strict) && strict.ValueKind is not (JsonValueKind.True or JsonValueKind.False or JsonValueKind.Null))
                    throw RequestJson.Wrong("response_format.json_schema.strict", "a boolean");
                if (!js.TryGetProperty("schema", out var schema) || schema.ValueKind is not (JsonValueKind.Object or JsonValueKind.True or JsonValueKind.False))
                    throw new ApiException(400, "'response_format.json_schema.schema' must be a JSON schema object", "response_format.json_schema.schema", "missing_required_parameter");
                return (ConstraintSpec.JsonSchema(schema), "response_format.json_schema.schema");
            default:
                throw new ApiException(400, $"'response_format.type' '{type.GetString()}' is not one of text, json_object, json_schema", "response_format.type", "invalid_value");
        }
    }

    private static (ConstraintSpec, string)? FromStructuredOutputs(JsonElement? value)
    {
        if (RequestFields.Present(value) is not { } so) return null;
        if (so.ValueKind != JsonValueKind.Object) throw RequestJson.Wrong("structured_outputs", "an object with one of 'choice', 'regex', 'json'");
        var given = new List<JsonProperty>();
        foreach (var p in so.EnumerateObject())
        {
            if (p.Value.ValueKind == JsonValueKind.Null) continue;
            if (!VllmKinds.Contains(p.Name))
                throw new ApiException(400, $"'structured_outputs.{p.Name}' is not supported (use one of choice, regex, json)", $"structured_outputs.{p.Name}", "unsupported_parameter");
            given.Add(p);
        }
        if (given.Count != 1)
            throw new ApiException(400, $"'structured_outputs' needs exactly one of choice, regex, json (got {(given.Count == 0 ? "none" : string.Join(", ", given.Select(g => g.Name)))})", "structured_outputs", Code);
        var (kind, v) = (given[0].Name, given[0].Value);
        string param = "structured_outputs." + kind;
        switch (kind)
        {
            case "choice":
                if (v.ValueKind != JsonValueKind.Array || v.GetArrayLength() == 0 || v.EnumerateArray().Any(c => c.ValueKind != JsonValueKind.String))
                    throw RequestJson.Wrong(param, "a non-empty list of strings");
                return (ConstraintSpec.Choice(v.EnumerateArray().Select(c => c.GetString()!).ToList()), param);
            case "regex":
                if (v.ValueKind != JsonValueKind.String) throw RequestJson.Wrong(param, "a string");
                return (ConstraintSpec.Regex(v.GetString()!), param);
            default:
                if (v.ValueKind == JsonValueKind.String)
                {
                    try
                    {
                        using var doc = JsonDocument.Parse(v.GetString()!);
                        RequestStrings.CheckAll(doc.RootElement, param); // the body's check saw this document as one string
                        return (ConstraintSpec.JsonSchema(doc.RootElement), param);
                    }
                    catch (JsonException e) { throw new ApiException(400, $"'{param}' is a string that is not JSON: {e.Message}", param, Code); }
                }
                if (v.ValueKind is not (JsonValueKind.Object or JsonValueKind.True or JsonValueKind.False))
                    throw RequestJson.Wrong(param, "a JSON schema (an object, or a string holding one)");
                return (ConstraintSpec.JsonSchema(v), param);
        }
    }
}
