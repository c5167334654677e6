using System.Text.Json;
using FinQLoRA.Data.Chat;
using FinQLoRA.Data.Tasks;
using FinQLoRA.Hub;

namespace FinQLoRA.Data.Formats;

/// <summary>
/// Reads training data in any supported layout (<see cref="DataFormat"/>) from JSONL or a Hugging Face Parquet file,
/// guessing the layout from the first record's fields unless it is given.
/// </summary>
public static class TrainingData
{
    public sealed record Loaded(List<SftRecord> Records, DataFormat Format);

    /// <summary>Stanford Alpaca's prompt (with and without an input), as Axolotl and the Alpaca scripts use it.</summary>
    public static string AlpacaPrompt(string instruction, string input) => input.Length > 0
        ? $"Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
        : $"Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n";

    /// <param name="template">how chat data is rendered; asked for only when the data is chat</param>
    /// <param name="unitField">a field every record must have, kept as its <see cref="SftRecord.Unit"/> (user-level privacy)</param>
    public static Loaded Read(string path, DataFormat? format, Func<ChatTemplateKind> template, string? unitField = null)
    {
        if (!File.Exists(path)) throw new UserInputException($"{path}: file not found; expected JSONL or Parquet training data");
        if (path.EndsWith(".parquet", StringComparison.OrdinalIgnoreCase)) return ReadParquet(path, format, template, unitField);
        var records = new List<SftRecord>();
        DataFormat? chosen = format;
        ChatTemplateKind? kind = null;
        foreach (var (lineNo, line) in Jsonl.JsonlLines.Read(path))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonDocument doc;
            try { doc = JsonDocument.Parse(line); }
            catch (JsonException e) { throw new UserInputException($"{path}:{lineNo}: invalid JSON ({e.Message.Split('\n')[0]}); each line must be one JSON object", e); }
            using (doc)
            {
                var root = doc.RootElement;
                if (root.ValueKind != JsonValueKind.Object) throw new UserInputException($"{path}:{lineNo}: expected a JSON object");
                chosen ??= Guess(root) ?? throw UserInputException.About($"{path}:{lineNo}: cannot tell the data format from its fields ({string.Join(", ", root.EnumerateObject().Select(p => p.Name))}); expected context/target, instruction/input/output or messages, or set {new ConfigField("data_format")}");
                if (chosen == DataFormat.Chat) kind ??= template();
                var record = Record(path, lineNo, root, chosen.Value, kind ?? ChatTemplateKind.None);
                records.Add(unitField is null ? record : record with { Unit = UnitValue(path, lineNo, root, unitField) });
            }
        }
        return new Loaded(records, chosen ?? DataFormat.ContextTarget);
    }

    private static Loaded ReadParquet(string path, DataFormat? format, Func<ChatTemplateKind> template, string? unitField)
    {
        string temp = Path.Combine(Path.GetTempPath(), $"finqlora-{Environment.ProcessId}-{Guid.NewGuid():N}.jsonl");
        try
        {
            ParquetToJsonl.ConvertAsync(path, temp).GetAwaiter().GetResult();
            var loaded = Read(temp, format, template, unitField);
            return loaded;
        }
        catch (UserInputException e) when (e.Message.StartsWith(temp, StringComparison.Ordinal))
        {
            throw new UserInputException(path + e.Message[temp.Length..], e); // name the user's file, not the temp copy
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    /// <summary>A unit field's value as text: a string, or a number's JSON spelling (customer ids come as both).</summary>
    private static string UnitValue(string path, int lineNo, JsonElement o, string field) =>
        o.TryGetProperty(field, out var v) && v.ValueKind is JsonValueKind.String or JsonValueKind.Number && v.ToString() is { Length: > 0 } text
            ? text
            : throw UserInputException.About($"{path}:{lineNo}: no string or number field '{field}', which {new ConfigField("dp_unit")} = field:{field} reads as the privacy unit; add it to every record or use dp_unit example");

    private static DataFormat? Guess(JsonElement o) =>
        o.TryGetProperty("messages", out _) ? DataFormat.Chat
        : o.TryGetProperty("instruction", out _) && o.TryGetProperty("output", out _) ? DataFormat.Alpaca
        : o.TryGetProperty("context", out _) && o.TryGetProperty("target", out _) ? DataFormat.ContextTarget
        : null;

    private static SftRecord Record(string path, int lineNo, JsonElement o, DataFormat format, ChatTemplateKind kind)
    {
        switch (format)
        {
            case DataFormat.ContextTarget:
                return SftRecord.Of(new Example(ExampleJsonl.StringField(path, lineNo, o, "context"), ExampleJsonl.StringField(path, lineNo, o, "target")));
            case DataFormat.Alpaca:
                string input = o.TryGetProperty("input", out var i) && i.ValueKind == JsonValueKind.String ? i.GetString()! : "";
                return SftRecord.Of(new Example(AlpacaPrompt(Field(path, lineNo, o, "instruction"), input), Field(path, lineNo, o, "output")));
            default:
                if (!o.TryGetProperty("messages", out var list) || list.ValueKind != JsonValueKind.Array)
                    throw new UserInputException($"{path}:{lineNo}: \"messages\" must be a list of {{role, content}} objects");
                var messages = new List<ChatTurn>();
                foreach (var m in list.EnumerateArray())
                {
                    string role = m.ValueKind == JsonValueKind.Object ? Field(path, lineNo, m, "role") : throw new UserInputException($"{path}:{lineNo}: each message must be an object with role and content");
                    if (role is not ("system" or "user" or "assistant"))
                        throw new UserInputException($"{path}:{lineNo}: message role '{role}' is not one of system, user, assistant");
                    messages.Add(new ChatTurn(role, Field(path, lineNo, m, "content")));
                }
                int last = messages.FindLastIndex(m => m.Role == "assistant");
                if (last < 0) throw new UserInputException($"{path}:{lineNo}: the conversation has no assistant turn to learn from");
                try
                {
                    var answer = new Example(ChatTemplate.Prompt(kind, messages[..last]), messages[last].Content);
                    return new SftRecord(answer, ChatTemplate.Render(kind, messages));
                }
                catch (UserInputException e) { throw new UserInputException($"{path}:{lineNo}: {e.Message}", e); } // the template's own rules (turn order, roles)
        }
    }

    private static string Field(string path, int lineNo, JsonElement o, string name) =>
        o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()!
        : throw new UserInputException($"{path}:{lineNo}: missing string field \"{name}\"");
}
