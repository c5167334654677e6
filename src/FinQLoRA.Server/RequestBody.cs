using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace FinQLoRA.Server;

/// <summary>A request's JSON object with typed field readers that name the field at fault (400). JSON null counts
/// as absent, as in OpenAI's API; fields we do not know are ignored, since SDKs send more than every server reads.</summary>
internal sealed class RequestBody(JsonElement root)
{
    public static async Task<RequestBody> ReadAsync(HttpContext context, long limit)
    {
        if (context.Request.ContentLength > limit) throw TooLarge(limit);
        try
        {
            using var doc = await JsonDocument.ParseAsync(context.Request.Body, default, context.RequestAborted).ConfigureAwait(false);
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new ApiException(400, "the request body must be a JSON object");
            return new RequestBody(doc.RootElement.Clone());
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge) { throw TooLarge(limit); }
        catch (JsonException e) { throw new ApiException(400, $"the request body is not valid JSON: {e.Message}"); }
    }

    private static ApiException TooLarge(long limit) =>
        new(413, $"the request body exceeds the limit of {limit} bytes", null, "request_too_large");

    public JsonElement? Get(string name) =>
        root.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    public string RequiredString(string name) =>
        OptionalString(name) ?? throw new ApiException(400, $"'{name}' is required", name, "missing_required_parameter");

    public string? OptionalString(string name) => Get(name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.String } v => v.GetString(),
        _ => throw Wrong(name, "a string"),
    };

    public bool? Bool(string name) => Get(name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.True } => true,
        { ValueKind: JsonValueKind.False } => false,
        _ => throw Wrong(name, "true or false"),
    };

    public int? Int(string name, int min, int max)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out long x)) throw Wrong(name, "an integer");
        if (x < min || x > max) throw new ApiException(400, $"'{name}' must be in [{min}, {max}] (got {x})", name);
        return (int)x;
    }

    public long? Long(string name)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out long x)) throw Wrong(name, "an integer");
        return x;
    }

    public double? Double(string name, double min, double max)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Number) throw Wrong(name, "a number");
        double x = v.GetDouble();
        if (x < min || x > max) throw new ApiException(400, $"'{name}' must be in [{min}, {max}] (got {x})", name);
        return x;
    }

    /// <summary>A string or a list of strings (OpenAI's <c>stop</c>).</summary>
    public IReadOnlyList<string> StringOrList(string name, int maxItems)
    {
        switch (Get(name))
        {
            case null: return [];
            case { ValueKind: JsonValueKind.String } v: return [v.GetString()!];
            case { ValueKind: JsonValueKind.Array } a:
                var list = a.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.String ? e.GetString()! : throw Wrong(name, "a string or a list of strings")).ToList();
                if (list.Count > maxItems) throw new ApiException(400, $"'{name}' takes at most {maxItems} entries (got {list.Count})", name);
                return list;
            default: throw Wrong(name, "a string or a list of strings");
        }
    }

    /// <summary>Refuses a field we do not implement unless it has its neutral value.</summary>
    public void Unsupported(string name, Func<JsonElement, bool> neutral)
    {
        if (Get(name) is { } v && !neutral(v)) throw new ApiException(400, $"'{name}' is not supported by this server", name, "unsupported_parameter");
    }

    public static ApiException Wrong(string name, string what) => new(400, $"'{name}' must be {what}", name, "invalid_type");
}
