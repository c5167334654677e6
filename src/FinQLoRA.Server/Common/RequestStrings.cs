using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;

namespace FinQLoRA.Server.Common;

/// <summary>
/// Checks every string of a request body, property names included, before any field is bound or read. JSON lets a
/// string escape a lone UTF-16 surrogate (<c>"\ud800"</c>) and <see cref="JsonDocument"/> parses it, but turning it into
/// a .NET string later throws (<see cref="Utf8JsonReader.GetString"/>: an <see cref="InvalidOperationException"/>
/// wherever the value is first read: the binder, <see cref="JsonElement.GetString"/> in a field's check, a schema's
/// keyword), which would be a 500 from whichever field meets it first. One walk here makes it a 400 naming the field
/// for every endpoint and every field alike.
/// </summary>
internal static class RequestStrings
{
    /// <summary>Throws a 400 naming the first string (by its field path, <c>messages[0].content</c>) that is no valid
    /// text. The document's nesting is bounded by the parser's depth limit, so the recursion is too.
    /// <paramref name="at"/> is the field a nested document came from (a schema sent as a string), empty for a body.</summary>
    public static void CheckAll(JsonElement root, string at = "") => Check(root, at);

    private static void Check(JsonElement element, string path)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                {
                    string name = Join(path, property);
                    if (Fault(JsonMarshal.GetRawUtf8PropertyName(property), () => property.Name) is { } fault)
                        throw Invalid(name, "property name", fault);
                    Check(property.Value, name);
                }
                break;
            case JsonValueKind.Array:
                int i = 0;
                foreach (var item in element.EnumerateArray()) Check(item, $"{(path.Length == 0 ? "$" : path)}[{i++}]");
                break;
            case JsonValueKind.String:
                if (Fault(JsonMarshal.GetRawUtf8Value(element), () => element.GetString()) is { } why)
                    throw Invalid(path.Length == 0 ? "$" : path, "string", why);
                break;
        }
    }

    /// <summary>Why the raw (still escaped) UTF-8 of a string does not decode to valid UTF-16; null when it does.
    /// Only a string with an escape can hold a lone surrogate, so the others are not decoded again (a prompt of a
    /// megabyte is not copied twice); the raw bytes are checked as UTF-8 too, in case a parser lets a bad sequence by.</summary>
    private static string? Fault(ReadOnlySpan<byte> raw, Func<string?> decode)
    {
        if (!Utf8.IsValid(raw)) return "invalid UTF-8";
        if (raw.IndexOf((byte)'\\') < 0) return null;
        try
        {
            decode();
            return null;
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            return "lone UTF-16 surrogate";
        }
    }

    private static string Join(string path, JsonProperty property)
    {
        // A name that does not decode is named as it was sent, escapes and all (model\ud800).
        string name;
        try { name = property.Name; }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException) { name = Encoding.UTF8.GetString(JsonMarshal.GetRawUtf8PropertyName(property)); }
        return path.Length == 0 ? name : $"{path}.{name}";
    }

    private static ApiException Invalid(string param, string what, string fault) =>
        new(400, $"{param}: invalid {what} ({fault}); send valid Unicode text", param, "invalid_value");
}
