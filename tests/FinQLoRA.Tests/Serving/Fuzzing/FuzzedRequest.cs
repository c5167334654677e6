using System.Text;

namespace FinQLoRA.Tests.Serving.Fuzzing;

/// <summary>One request as it goes on the wire, with what was done to it; <see cref="ToString"/> is what a failure
/// prints, enough to send it again by hand (bytes that are no UTF-8 shown as <c>\xNN</c>).</summary>
internal sealed record FuzzedRequest(
    int Index, FuzzedEndpoint Endpoint, string Method, string Path, string? ContentType, byte[]? Body, string? Authorization, IReadOnlyList<string> Damage)
{
    /// <summary>Kestrel refuses a request target holding an encoded NUL before any of the server's code runs: a bare
    /// 400 and the connection closed. The server cannot shape that answer, so it is the one 4xx without OpenAI's body.</summary>
    public bool KestrelRefuses => Path.Contains("%00", StringComparison.Ordinal);

    public HttpRequestMessage ToMessage()
    {
        var message = new HttpRequestMessage(new HttpMethod(Method), Path);
        if (Body is not null)
        {
            message.Content = new ByteArrayContent(Body);
            if (ContentType is not null) message.Content.Headers.TryAddWithoutValidation("Content-Type", ContentType);
        }
        if (Authorization is not null) message.Headers.TryAddWithoutValidation("Authorization", Authorization);
        return message;
    }

    public override string ToString()
    {
        var text = new StringBuilder($"#{Index} {Method} {Path} ({Endpoint}); damage: {(Damage.Count == 0 ? "none" : string.Join("; ", Damage))}");
        text.Append($"\n  Content-Type: {ContentType ?? "(none)"}; Authorization: {Authorization ?? "(none)"}");
        if (Body is not null) text.Append($"\n  body ({Body.Length} bytes): {Printable(Body, 4000)}");
        return text.ToString();
    }

    private static string Printable(byte[] body, int max)
    {
        var text = new StringBuilder();
        var decoder = new UTF8Encoding(false, throwOnInvalidBytes: true);
        int i = 0;
        while (i < body.Length && text.Length < max)
        {
            // the longest valid UTF-8 sequence here (1 to 4 bytes), else the byte as \xNN
            int taken = 0;
            for (int n = 1; n <= 4 && i + n <= body.Length && taken == 0; n++)
            {
                try { text.Append(decoder.GetString(body, i, n)); taken = n; }
                catch (DecoderFallbackException) { }
            }
            if (taken == 0) { text.Append($"\\x{body[i]:X2}"); taken = 1; }
            i += taken;
        }
        return i < body.Length ? text + $"… ({body.Length - i} more bytes)" : text.ToString();
    }
}
