using System.Text.Json;
using System.Text.Json.Nodes;

namespace FinQLoRA.Cli.Commands;

/// <summary>Reads prompts from JSONL: each line's <c>prompt</c>, <c>context</c> or <c>text</c> field.</summary>
public static class PromptFile
{
    public static List<string> Read(string path) => ReadLines(path).Select(l => l.Prompt).ToList();

    /// <summary>Prompts with their optional <c>"adapter": "name"</c> (null or "base" = the base model).</summary>
    public static List<PromptLine> ReadLines(string path)
    {
        if (!File.Exists(path)) throw new UserInputException($"{path}: file not found");
        var prompts = new List<PromptLine>();
        foreach (var (lineNo, line) in FinQLoRA.Data.Jsonl.JsonlLines.Read(path))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonNode? node;
            try { node = JsonNode.Parse(line); }
            catch (JsonException e) { throw new UserInputException($"{path}:{lineNo}: not valid JSON ({e.Message}); each line must be one JSON object"); }
            if (node is not JsonObject obj) throw new UserInputException($"{path}:{lineNo}: expected a JSON object");
            string? text = (obj["prompt"] ?? obj["context"] ?? obj["text"])?.GetValue<string>();
            if (text == null) throw new UserInputException($"{path}:{lineNo}: no 'prompt', 'context' or 'text' field");
            bool names = obj.TryGetPropertyValue("adapter", out var adapterNode);
            string? adapter = null;
            if (adapterNode != null)
            {
                if (adapterNode is not JsonValue v || !v.TryGetValue(out adapter))
                    throw new UserInputException($"{path}:{lineNo}: 'adapter' must be a string (an --adapter name), \"base\" or null");
                if (adapter == AdapterSpec.BaseName) adapter = null;
            }
            prompts.Add(new PromptLine(text, adapter, names));
        }
        if (prompts.Count == 0) throw new UserInputException($"{path}: no prompts");
        return prompts;
    }
}
