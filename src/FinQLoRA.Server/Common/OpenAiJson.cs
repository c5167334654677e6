using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace FinQLoRA.Server.Common;

/// <summary>The one set of JSON options of the HTTP layer: the source-generated <see cref="OpenAiJsonContext"/> with its
/// options (OpenAI's snake-case names), non-ASCII text as itself rather than \uXXXX escapes (the body is JSON, never
/// embedded in HTML), and a streamed chunk's <c>usage</c> written as null only when the client asked for usage.</summary>
internal static class OpenAiJson
{
    public static readonly JsonSerializerOptions Options = new(OpenAiJsonContext.Default.Options)
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        TypeInfoResolver = OpenAiJsonContext.Default.WithAddedModifier(NullUsageOnlyWhenAsked),
    };

    public static JsonTypeInfo<T> Info<T>() => (JsonTypeInfo<T>)Options.GetTypeInfo(typeof(T));

    public static string Serialize<T>(T value) => JsonSerializer.Serialize(value, Info<T>());

    private static void NullUsageOnlyWhenAsked(JsonTypeInfo type)
    {
        if (!typeof(IStreamChunk).IsAssignableFrom(type.Type)) return;
        foreach (var property in type.Properties)
            if (property.Name == "usage")
                property.ShouldSerialize = (chunk, usage) => usage is not null || ((IStreamChunk)chunk).WritesNullUsage;
    }
}
