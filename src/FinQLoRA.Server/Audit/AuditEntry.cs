using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using FinQLoRA.Serving;
using Microsoft.AspNetCore.Http;

namespace FinQLoRA.Server.Audit;

/// <summary>
/// What the audit log records of one request. The guard middleware puts it in <see cref="HttpContext.Items"/> when the
/// request arrives and writes it once when the request has ended (a stream after its last chunk); the serving code of
/// each endpoint fills in what only it knows (<see cref="Of"/> is null when the audit log is off). Token counts and
/// texts of a stream are added as its events arrive, so a stream the client abandons is audited with what it got.
/// </summary>
internal sealed class AuditEntry(string requestId, string endpoint, DateTimeOffset time, bool includeContent)
{
    private const string Item = "finqlora.audit";

    private sealed class Choice
    {
        public int Tokens;
        public string? Finish;
        public StringBuilder? Text;
    }

    private readonly List<Choice> _choices = [];
    private List<string>? _prompts;
    private string? _model, _adapter, _adapterSha256, _error;
    private int? _promptTokens;

    public string RequestId => requestId;

    public static AuditEntry? Of(HttpContext context) =>
        context.Items.TryGetValue(Item, out var e) ? e as AuditEntry : null;

    public void AttachTo(HttpContext context) => context.Items[Item] = this;

    /// <summary>The served name the request asked for, the adapter it stands for (null: the base) and that adapter's sha256.</summary>
    public void Served(string model, string? adapter, string? adapterSha256) =>
        (_model, _adapter, _adapterSha256) = (model, adapter, adapterSha256);

    /// <summary>The prompt tokens of the whole request and its prompts as the model reads them (kept only with --audit-content).</summary>
    public void Prompts(int tokens, IEnumerable<string> texts)
    {
        _promptTokens = tokens;
        if (includeContent) _prompts = texts.ToList();
    }

    /// <summary>A decision: its input tokens, its input as sent; it generates nothing.</summary>
    public void Decided(int inputTokens, string input) => Prompts(inputTokens, [input]);

    /// <summary>The choices of an answer that did not stream, in choice order.</summary>
    public void Completed(IReadOnlyList<EngineCompletion> results)
    {
        for (int i = 0; i < results.Count; i++)
        {
            var c = ChoiceAt(i);
            c.Tokens = results[i].CompletionTokens;
            c.Finish = results[i].FinishReason.Value;
            c.Text?.Append(results[i].Text);
        }
    }

    /// <summary>One event of choice <paramref name="choice"/> of a stream: one more token, and on the last event the
    /// engine's own count and the finish reason.</summary>
    public void Streamed(int choice, EngineEvent e)
    {
        var c = ChoiceAt(choice);
        c.Text?.Append(e.TextDelta);
        if (e.IsFinal)
        {
            c.Tokens = e.CompletionTokens;
            c.Finish = e.FinishReason!.Value;
        }
        else c.Tokens++;
    }

    /// <summary>The OpenAI error code (or type) the request was answered with.</summary>
    public void Failed(string code) => _error = code;

    private Choice ChoiceAt(int i)
    {
        while (_choices.Count <= i) _choices.Add(new Choice { Text = includeContent ? new StringBuilder() : null });
        return _choices[i];
    }

    /// <summary>The whole line, UTF-8, ending in '\n' (one write call puts it in the file). Every field is always present
    /// (null where unknown), in a fixed order that starts with <c>time</c> (<see cref="AuditLogFiles.LineStart"/>).</summary>
    public byte[] ToJsonLine(string? keyId, int status, double latencyMs)
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("time", time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture));
            w.WriteString("request_id", requestId);
            WriteOrNull(w, "key_id", keyId);
            w.WriteString("endpoint", Clean(endpoint));
            WriteOrNull(w, "model", _model);
            WriteOrNull(w, "adapter", _adapter);
            WriteOrNull(w, "adapter_sha256", _adapterSha256);
            w.WriteNumber("status", status);
            WriteOrNull(w, "error", _error);
            if (_promptTokens is { } p) w.WriteNumber("prompt_tokens", p); else w.WriteNull("prompt_tokens");
            if (_choices.Count > 0 || _promptTokens is not null) w.WriteNumber("completion_tokens", _choices.Sum(c => c.Tokens));
            else w.WriteNull("completion_tokens");
            w.WriteNumber("latency_ms", Math.Round(latencyMs, 3));
            WriteOrNull(w, "finish_reason", FinishReason());
            if (includeContent)
            {
                WriteTexts(w, "prompt", _prompts);
                WriteTexts(w, "completion", _choices.Count == 0 ? null : _choices.Select(c => c.Text!.ToString()).ToList());
            }
            w.WriteEndObject();
        }
        buffer.Write("\n"u8);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>One choice: its reason (null when it did not finish); several: their reasons in choice order,
    /// comma-separated, "none" for one that did not finish.</summary>
    private string? FinishReason() =>
        _choices.Count switch
        {
            0 => null,
            1 => _choices[0].Finish,
            _ => string.Join(',', _choices.Select(c => c.Finish ?? "none")),
        };

    private static void WriteOrNull(Utf8JsonWriter w, string name, string? value)
    {
        if (value is null) w.WriteNull(name);
        else w.WriteString(name, Clean(value));
    }

    private static void WriteTexts(Utf8JsonWriter w, string name, List<string>? texts)
    {
        if (texts is null)
        {
            w.WriteNull(name);
            return;
        }
        w.WriteStartArray(name);
        foreach (string t in texts) w.WriteStringValue(Clean(t));
        w.WriteEndArray();
    }

    /// <summary>A string from outside may hold a lone surrogate, which JSON cannot carry as UTF-8 and the writer refuses:
    /// it becomes U+FFFD (what a UTF-8 round trip gives), so that a line is always written.</summary>
    private static string Clean(string s)
    {
        foreach (char ch in s)
            if (char.IsSurrogate(ch)) return Encoding.UTF8.GetString(Encoding.UTF8.GetBytes(s));
        return s;
    }
}
