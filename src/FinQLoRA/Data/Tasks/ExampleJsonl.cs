using System.Text;
using System.Text.Json;
using FinQLoRA.Data.Jsonl;
using FinQLoRA.IO;

namespace FinQLoRA.Data.Tasks;

/// <summary>
/// Reads and writes <c>{"context": …, "target": …}</c> JSONL. Lines are written byte-for-byte as Python's
/// <c>json.dumps(obj, ensure_ascii=False)</c> writes them, which is how FinLoRA's files were made, so a rebuilt
/// file can be compared line by line with the reference.
/// </summary>
public static class ExampleJsonl
{
    public static void Write(string path, IEnumerable<Example> examples)
    {
        var text = new StringBuilder();
        foreach (var e in examples) text.Append(Line(e)).Append('\n');
        AtomicFile.WriteAllText(path, text.ToString());
    }

    /// <summary>One JSONL line (without the newline) as Python's json.dumps(ensure_ascii=False) formats it.</summary>
    public static string Line(Example e)
    {
        var sb = new StringBuilder(e.Context.Length + e.Target.Length + 32);
        sb.Append("{\"context\": ");
        AppendString(sb, e.Context);
        sb.Append(", \"target\": ");
        AppendString(sb, e.Target);
        sb.Append('}');
        return sb.ToString();
    }

    public static IReadOnlyList<Example> Read(string path)
    {
        if (!File.Exists(path)) throw new UserInputException($"{path}: file not found; expected a JSONL file with \"context\" and \"target\" on each line");
        var result = new List<Example>();
        foreach (var (lineNo, line) in JsonlLines.Read(path))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            result.Add(Parse(path, lineNo, line));
        }
        return result;
    }

    internal static Example Parse(string path, int lineNo, string line)
    {
        try
        {
            using var doc = JsonDocument.Parse(line);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new UserInputException($"{path}:{lineNo}: expected a JSON object with \"context\" and \"target\"");
            return new Example(StringField(path, lineNo, root, "context"), StringField(path, lineNo, root, "target"));
        }
        catch (JsonException ex)
        {
            throw new UserInputException($"{path}:{lineNo}: invalid JSON ({ex.Message.Split('\n')[0]}); each line must be one JSON object", ex);
        }
    }

    internal static string StringField(string path, int lineNo, JsonElement obj, string name)
    {
        if (!obj.TryGetProperty(name, out var value) || value.ValueKind != JsonValueKind.String)
            throw new UserInputException($"{path}:{lineNo}: missing string field \"{name}\"; each line needs \"context\" and \"target\" strings");
        return value.GetString()!;
    }

    private static void AppendString(StringBuilder sb, string s)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4"));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}
