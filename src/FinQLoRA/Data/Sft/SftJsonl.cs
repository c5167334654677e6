using System.Text.Json;
using System.Text.Json.Nodes;

namespace FinQLoRA.Data.Sft;

/// <summary>Reads <c>context</c>/<c>target</c> JSONL, failing on the first bad line with its number.</summary>
public static class SftJsonl
{
    public static List<SftExample> Read(string path)
    {
        if (!File.Exists(path)) throw new UserInputException($"{path}: file not found");
        var examples = new List<SftExample>();
        int lineNo = 0;
        foreach (string line in File.ReadLines(path))
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonNode? node;
            try { node = JsonNode.Parse(line); }
            catch (JsonException e) { throw new UserInputException($"{path}:{lineNo}: not valid JSON ({e.Message}); each line must be one object with 'context' and 'target'"); }
            string? context = node?["context"] is JsonValue c && c.TryGetValue(out string? cs) ? cs : null;
            string? target = node?["target"] is JsonValue t && t.TryGetValue(out string? ts) ? ts : null;
            if (context == null || target == null)
                throw new UserInputException($"{path}:{lineNo}: needs string fields 'context' and 'target'");
            examples.Add(new SftExample(context, target));
        }
        if (examples.Count == 0) throw new UserInputException($"{path}: no examples");
        return examples;
    }
}
