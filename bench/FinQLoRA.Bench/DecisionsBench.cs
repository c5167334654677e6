using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using FinQLoRA.Data.Chat;
using FinQLoRA.Data.Tasks;
using FinQLoRA.Loading;
using FinQLoRA.Server;
using FinQLoRA.Serving;
using FinQLoRA.Serving.Decisions;
using static TorchSharp.torch;

namespace FinQLoRA.Bench;

/// <summary>
/// <c>bench serve</c>'s decisions figure: FinGPT's nine headline questions (Yes/No) about one input, answered by one
/// <c>POST /v1/decisions</c>, against the same nine prompts (the decision rendering, so both read the same text)
/// sent at once as nine separate completion requests that generate headline's answer budget of 4 tokens greedily.
/// Questions per second, the median of three runs, each run on a fresh input so that no run reads the one before it
/// from the prefix cache; for a headline-length input and for a ~300-token paragraph.
/// </summary>
public static class DecisionsBench
{
    private const int AnswerTokens = 4;

    public static async Task RunAsync(string name, string folder, int runs = 3)
    {
        var tokenizer = ModelLoading.LoadTokenizer(folder);
        using var model = ModelLoading.LoadModel(folder, new ModelLoadOptions { DType = ScalarType.Float32 });
        var metrics = new ServerMetrics(name);
        using var engine = new ServingEngine(model, tokenizer, new EngineOptions { MaxBatch = 32, MaxModelLen = 1024, PrefixCacheBytes = 256L << 20 }, metrics);
        await using var server = OpenAiServer.Create(engine, new ServerOptions { ServedModelName = name, Port = 0 }, metrics);
        await server.StartAsync();
        using var http = new HttpClient { BaseAddress = server.Url, Timeout = TimeSpan.FromMinutes(10) };
        var questions = HeadlineQuestions.All.Select(q => new ChoiceQuestion(HeadlineQuestions.Instruction(q, TaskLabels.YesNo),
            TaskLabels.YesNo.Select(l => new DecisionOption(DecisionValue.Of(l))).ToList())).ToList();

        Console.WriteLine($"{name}: 9 headline questions over one input, one decisions request vs 9 completion requests at once ({AnswerTokens} tokens each)");
        await Compare(http, name, questions, i => $"Gold futures climbed {i + 1.5}% on Friday as the dollar slipped.", "headline", 1);
        await Compare(http, name, questions, Paragraph, "~300-token paragraph", runs);
        await server.StopAsync();
    }

    private static async Task Compare(HttpClient http, string name, List<ChoiceQuestion> questions, Func<int, string> input, string what, int runs)
    {
        await Decide(http, name, questions, input(-1)); // warm-up
        await Complete(http, name, questions, input(-2));
        var decided = new List<double>();
        var completed = new List<double>();
        for (int r = 0; r < Math.Max(3, runs); r++)
        {
            decided.Add(await Decide(http, name, questions, input(2 * r)));
            completed.Add(await Complete(http, name, questions, input(2 * r + 1)));
        }
        double d = decided.Order().ElementAt(decided.Count / 2), c = completed.Order().ElementAt(completed.Count / 2);
        Console.WriteLine($"  {what}: decisions {9 / d:F1} questions/s vs completions {9 / c:F1} questions/s = {c / d:F2}x (goal >= 3x)");
    }

    private static async Task<double> Decide(HttpClient http, string name, List<ChoiceQuestion> questions, string input)
    {
        var body = new JsonObject
        {
            ["model"] = name, ["input"] = input,
            ["questions"] = new JsonArray(questions.Select(q => (JsonNode)new JsonObject
            {
                ["type"] = "choice", ["instructions"] = q.Instructions,
                ["choices"] = new JsonArray(q.Choices.Select(c => (JsonNode)new JsonObject { ["value"] = c.Value.Text }).ToArray()),
            }).ToArray()),
        };
        var sw = Stopwatch.StartNew();
        using var response = await http.PostAsJsonAsync("/v1/decisions", body);
        response.EnsureSuccessStatusCode();
        return sw.Elapsed.TotalSeconds;
    }

    private static async Task<double> Complete(HttpClient http, string name, List<ChoiceQuestion> questions, string input)
    {
        var sw = Stopwatch.StartNew();
        await Task.WhenAll(questions.Select(async q =>
        {
            var body = new JsonObject
            {
                ["model"] = name, ["prompt"] = DecisionPrompt.Context(null, [new ChatTurn("user", input)], q),
                ["max_tokens"] = AnswerTokens, ["temperature"] = 0,
            };
            using var response = await http.PostAsJsonAsync("/v1/completions", body);
            response.EnsureSuccessStatusCode();
        }));
        return sw.Elapsed.TotalSeconds;
    }

    private static string Paragraph(int i) => string.Join(' ', Enumerable.Range(0, 12).Select(k =>
        $"On day {i * 12 + k} the gold price moved {(k % 3 == 0 ? "up" : k % 3 == 1 ? "down" : "sideways")} while the bank reported {k + i} new accounts."));
}
