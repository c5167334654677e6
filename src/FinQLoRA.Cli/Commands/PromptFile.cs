using System.Text.Json;
using System.Text.Json.Nodes;

namespace FinQLoRA.Cli.Commands;

/// <summary>Reads prompts from JSONL: each line's <c>prompt</c>, <c>context</c> or <c>text</c> field.</summary>
public static class PromptFile
{
    public static List<string> Read(string path)
    {
        if (!File.Exists(path)) throw new UserInputException($"{path}: file not found");
        var prompts = new List<string>();
        int lineNo = 0;
        foreach (string line in File.ReadLines(path))
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonNode? node;
            try { node = JsonNode.Parse(line); }
            catch (JsonException e) { throw new UserInputException($"{path}:{lineNo}: not valid JSON ({e.Message}); each line must be one JSON object"); }
            string? text = (node?["prompt"] ?? node?["context"] ?? node?["text"])?.GetValue<string>();
            prompts.Add(text ?? throw new UserInputException($"{path}:{lineNo}: no 'prompt', 'context' or 'text' field"));
        }
        if (prompts.Count == 0) throw new UserInputException($"{path}: no prompts");
        return prompts;
    }
}
