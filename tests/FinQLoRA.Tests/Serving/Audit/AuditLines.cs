using System.Text;
using System.Text.Json;

namespace FinQLoRA.Tests.Serving.Audit;

/// <summary>Reads an audit log as a reader of it would: every line parsed by System.Text.Json on its own (a torn or
/// merged line fails the test, naming the line), and the line of one request found by its id.</summary>
public static class AuditLines
{
    /// <summary>Every line of <paramref name="file"/> parsed; the file must end with a newline.</summary>
    public static List<JsonElement> Read(string file)
    {
        string text = ReadText(file);
        if (text.Length > 0) Assert.True(text.EndsWith('\n'), $"{file} does not end with a newline: ...{text[^Math.Min(80, text.Length)..]}");
        var lines = text.Split('\n');
        var parsed = new List<JsonElement>();
        for (int i = 0; i < lines.Length - 1; i++)
        {
            try
            {
                using var doc = JsonDocument.Parse(lines[i]);
                Assert.Equal(JsonValueKind.Object, doc.RootElement.ValueKind);
                parsed.Add(doc.RootElement.Clone());
            }
            catch (JsonException e)
            {
                Assert.Fail($"{file} line {i + 1} is not JSON ({e.Message}): {lines[i]}");
            }
        }
        return parsed;
    }

    /// <summary>The one line of request <paramref name="requestId"/>, waiting for the writer thread (the line is written
    /// after the answer); fails when there is none after a minute or more than one.</summary>
    public static async Task<JsonElement> OfAsync(string file, string requestId)
    {
        for (int attempt = 0; attempt < 600; attempt++)
        {
            var mine = Read(file).Where(l => l.GetProperty("request_id").GetString() == requestId).ToList();
            if (mine.Count > 1) Assert.Fail($"request {requestId} has {mine.Count} audit lines");
            if (mine.Count == 1) return mine[0];
            await Task.Delay(100);
        }
        throw new Xunit.Sdk.XunitException($"no audit line for request {requestId} in {file}:\n{ReadText(file)}");
    }

    /// <summary>Read alongside the server's open handle (it shares the file for reading).</summary>
    public static string ReadText(string file)
    {
        if (!File.Exists(file)) return "";
        using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }
}
