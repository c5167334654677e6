using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Http;

namespace FinQLoRA.Server.Common;

/// <summary>
/// Binds a request body to its protocol record. The body is parsed first (so that malformed JSON and a non-object get
/// their own messages), then bound with the source-generated contract; a field of the wrong JSON type is named (400,
/// <c>invalid_type</c>), and a string that is no valid text (a lone surrogate escape) is named before any field reads it
/// (<see cref="RequestStrings"/>). JSON null counts as absent, as in OpenAI's API; fields we do not know are ignored, since SDKs
/// send more than every server reads.
/// </summary>
internal static class RequestJson
{
    /// <param name="typeError">names the field at a JSON path (<c>$.messages[0].role</c>) where the record's field
    /// types do not say it well enough; null falls back to the field's type</param>
    public static async Task<T> ReadAsync<T>(HttpContext context, long limit, Func<string, ApiException?>? typeError = null)
    {
        if (context.Request.ContentLength > limit) throw TooLarge(limit);
        var info = OpenAiJson.Info<T>();
        try
        {
            using var doc = await JsonDocument.ParseAsync(context.Request.Body, default, context.RequestAborted).ConfigureAwait(false);
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new ApiException(400, "the request body must be a JSON object");
            RequestStrings.CheckAll(doc.RootElement);
            try
            {
                return doc.RootElement.Deserialize(info)!;
            }
            catch (JsonException e)
            {
                string path = e.Path ?? "$";
                throw typeError?.Invoke(path) ?? WrongType(info, path);
            }
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge) { throw TooLarge(limit); }
        catch (JsonException e) { throw new ApiException(400, $"the request body is not valid JSON: {e.Message}"); }
    }

    public static ApiException Wrong(string name, string what) => new(400, $"'{name}' must be {what}", name, "invalid_type");

    private static ApiException TooLarge(long limit) =>
        new(413, $"the request body exceeds the limit of {limit} bytes", null, "request_too_large");

    /// <summary>The error for a top-level field whose JSON type does not fit its record field.</summary>
    private static ApiException WrongType(JsonTypeInfo info, string path)
    {
        string name = path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : path;
        var type = info.Properties.FirstOrDefault(p => p.Name == name)?.PropertyType;
        type = type is null ? null : Nullable.GetUnderlyingType(type) ?? type;
        string what = type == typeof(string) ? "a string"
            : type == typeof(bool) ? "true or false"
            : type == typeof(long) || type == typeof(int) ? "an integer"
            : type == typeof(double) ? "a number"
            : "a value of another type";
        return Wrong(name, what);
    }
}
