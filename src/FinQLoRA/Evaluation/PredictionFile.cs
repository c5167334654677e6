using System.Text;
using System.Text.Json;
using FinQLoRA.Data.Jsonl;
using FinQLoRA.Data.Tasks;
using FinQLoRA.IO;

namespace FinQLoRA.Evaluation;

/// <summary>One generated answer: the example's prompt and target, and what the model wrote.</summary>
public sealed record Prediction(string Context, string Target, string Output);

/// <summary>
/// Predictions JSONL, one <c>{"context": …, "target": …, "output": …}</c> per line ("context" optional when
/// reading). Eval writes it; <c>finqlora score</c> reads it.
/// </summary>
public static class PredictionFile
{
    public static IReadOnlyList<Prediction> Read(string path)
    {
        if (!File.Exists(path)) throw new UserInputException($"{path}: predictions file not found");
        var result = new List<Prediction>();
        foreach (var (lineNo, line) in JsonlLines.Read(path))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            try
            {
                using var doc = JsonDocument.Parse(line);
                var root = doc.RootElement;
                if (root.ValueKind != JsonValueKind.Object) throw new UserInputException($"{path}:{lineNo}: expected a JSON object with \"target\" and \"output\"");
                string context = root.TryGetProperty("context", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString()! : "";
                if (!root.TryGetProperty("output", out var o) || o.ValueKind != JsonValueKind.String)
                    throw new UserInputException($"{path}:{lineNo}: missing string field \"output\" (the model's answer)");
                result.Add(new Prediction(context, ExampleJsonl.StringField(path, lineNo, root, "target"), o.GetString()!));
            }
            catch (JsonException ex)
            {
                throw new UserInputException($"{path}:{lineNo}: invalid JSON ({ex.Message.Split('\n')[0]}); each line must be one JSON object", ex);
            }
        }
        return result;
    }

    public static void Write(string path, IEnumerable<Prediction> predictions, IReadOnlyList<bool>? correct = null)
    {
        var sb = new StringBuilder();
        int i = 0;
        foreach (var p in predictions)
        {
            var line = new Dictionary<string, object> { ["context"] = p.Context, ["target"] = p.Target, ["output"] = p.Output };
            if (correct != null) line["correct"] = correct[i];
            sb.Append(JsonSerializer.Serialize(line)).Append('\n');
            i++;
        }
        AtomicFile.WriteAllText(path, sb.ToString());
    }
}
