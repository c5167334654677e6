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
/// from the prefix cache; for a headline and for a paragraph of twelve sentences, on a server with automatic prefix
/// caching (the completions then share the input too, once the first has been prefilled) and on one without.
/// </summary>
public static class DecisionsBench
{
    private const int AnswerTokens = 4;

    public static async Task RunAsync(string name, string folder, int runs = 3)
    {
        var tokenizer = ModelLoading.LoadTokenizer(folder);
        using var model = ModelLoading.LoadModel(folder, new ModelLoadOptions { DType = ScalarType.Float32 });
        var questions = HeadlineQuestions.All.Select(q => new ChoiceQuestion(HeadlineQuestions.Instruction(q, TaskLabels.YesNo),
            TaskLabels.YesNo.Select(l => new DecisionOption(DecisionValue.Of(l))).ToList())).ToList();
        Func<int, string> headline = i => $"Gold futures climbed {i + 1.5}% on Friday as the dollar slipped.";
        Console.WriteLine($"{name}: 9 headline questions over one input, one decisions request vs 9 completion requests at once ({AnswerTokens} tokens each); " +
            $"inputs of {tokenizer.Encode(headline(0), false).Length} and {tokenizer.Encode(Paragraph(0), false).Length} tokens, " +
            $"question prompts of {tokenizer.Encode(DecisionPrompt.Context(null, [new ChatTurn("user", headline(0))], questions[0]), true).Length} tokens with the headline");
        // Decisions and completions on one server with automatic prefix caching (the default: the completions then
        // share the input too, once the first is prefilled), then the completions on a server without it
        // (--prefix-cache-gib 0), where each of the nine prompts is prefilled whole.
        var decided = new Dictionary<string, double>();
        foreach (bool cache in new[] { true, false })
        {
            var metrics = new ServerMetrics(name);
            using var engine = new ServingEngine(model, tokenizer, new EngineOptions { MaxBatch = 32, MaxModelLen = 1024, PrefixCacheBytes = cache ? 256L << 20 : 0 }, metrics);
            await using var server = OpenAiServer.Create(engine, new ServerOptions { ServedModelName = name, Port = 0 }, metrics);
            await server.StartAsync();
            using var http = new HttpClient { BaseAddress = server.Url, Timeout = TimeSpan.FromMinutes(10) };
            foreach (var (what, input) in new[] { ("headline", headline), ("paragraph", (Func<int, string>)Paragraph) })
            {
                if (cache) decided[what] = await Median(runs, r => Decide(http, name, questions, input(2 * r)), () => Decide(http, name, questions, input(-1)));
                double completed = await Median(runs, r => Complete(http, name, questions, input(2 * r + 1)), () => Complete(http, name, questions, input(-2)));
                Console.WriteLine($"  {what}: decisions {9 / decided[what]:F1} questions/s (prefix cache on) vs completions {9 / completed:F1} questions/s (prefix cache {(cache ? "on" : "off")}) = {completed / decided[what]:F2}x (goal >= 3x)");
            }
            await server.StopAsync();
        }
    }

    /// <summary>The median of <paramref name="runs"/> timings (at least three), after one warm-up.</summary>
    private static async Task<double> Median(int runs, Func<int, Task<double>> run, Func<Task<double>> warmUp)
    {
        await warmUp();
        var times = new List<double>();
        for (int r = 0; r < Math.Max(3, runs); r++) times.Add(await run(r));
        return times.Order().ElementAt(times.Count / 2);
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
