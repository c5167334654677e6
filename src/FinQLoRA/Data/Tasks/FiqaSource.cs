using System.Globalization;
using System.Text.Json;

namespace FinQLoRA.Data.Tasks;

/// <summary>
/// FiQA 2018 task 1 JSON: <c>{id: {sentence, info: [{sentiment_score, …}, …]}}</c>. One example per aspect
/// entry (TheFinAI/fiqa-sentiment-classification, and so FinLoRA's fiqa_test, has one row per aspect).
/// Score to label as FinGPT does: below -0.1 negative, 0.1 and above positive, else neutral.
/// Microblog posts are asked about as a "tweet", headlines as "news" (FinLoRA's wording), told apart by the
/// official file names (<c>task1_post_*</c>, <c>task1_headline_*</c>).
/// </summary>
internal sealed class FiqaSource : ITaskSource
{
    public IEnumerable<Example> Read(string path, SourceContext context)
    {
        string medium = MediumOf(path);
        JsonDocument doc;
        try { doc = JsonDocument.Parse(SourceFiles.ReadUtf8(path)); }
        catch (JsonException ex) { throw new UserInputException($"{path}:{(ex.LineNumber ?? 0) + 1}: invalid JSON; expected FiQA task 1 JSON {{id: {{sentence, info: [...]}}}}", ex); }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new UserInputException($"{path}:1: expected a JSON object keyed by id (FiQA task 1 format)");
            var result = new List<Example>();
            foreach (var entry in doc.RootElement.EnumerateObject())
            {
                if (!entry.Value.TryGetProperty("sentence", out var sentence) || sentence.ValueKind != JsonValueKind.String)
                    throw new UserInputException($"{path}: entry '{entry.Name}' has no string \"sentence\"");
                if (!entry.Value.TryGetProperty("info", out var info) || info.ValueKind != JsonValueKind.Array)
                    throw new UserInputException($"{path}: entry '{entry.Name}' has no \"info\" array");
                foreach (var aspect in info.EnumerateArray())
                {
                    double score = Score(path, entry.Name, aspect);
                    string label = score < -0.1 ? TaskLabels.Negative : score >= 0.1 ? TaskLabels.Positive : TaskLabels.Neutral;
                    result.Add(new Example(context.Task.PromptFor(sentence.GetString()!, medium), label));
                }
            }
            return result;
        }
    }

    private static string MediumOf(string path)
    {
        string name = Path.GetFileName(path).ToLowerInvariant();
        if (name.Contains("post")) return "tweet";
        if (name.Contains("headline")) return "news";
        throw new UserInputException($"{path}: cannot tell posts from headlines; keep FiQA's file names (task1_post_ABSA_*.json or task1_headline_ABSA_*.json)");
    }

    private static double Score(string path, string id, JsonElement aspect)
    {
        if (aspect.TryGetProperty("sentiment_score", out var s))
        {
            if (s.ValueKind == JsonValueKind.Number) return s.GetDouble();
            if (s.ValueKind == JsonValueKind.String && double.TryParse(s.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out double v)) return v;
        }
        throw new UserInputException($"{path}: entry '{id}' has an aspect without a numeric \"sentiment_score\"");
    }
}
