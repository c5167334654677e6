// The official client marks its Decisions API (public beta) as for evaluation: exactly what these tests do with it.
#pragma warning disable OPENAI001
using System.ClientModel;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using FinQLoRA.Data.Chat;
using FinQLoRA.Data.Tasks;
using FinQLoRA.Evaluation;
using FinQLoRA.Serving.Decisions;
using OpenAI.Decisions;

namespace FinQLoRA.Tests.Serving.Decisions;

/// <summary>
/// <c>POST /v1/decisions</c> through the official OpenAI .NET client (2.15.0, <see cref="DecisionsClient"/>): every
/// probability equals what <c>eval --mode choice</c>'s scorer (<see cref="ChoiceScorer"/>, one plain forward per
/// batch, no cache) gives the same prompt and labels, for the base and an adapter, with multi-token labels; names,
/// typed values, refusals, usage and cache hits as OpenAI reports them.
/// </summary>
public sealed class DecisionsServerTests(DecisionsFixture f) : IClassFixture<DecisionsFixture>
{
    private const string Input = "Shares of the little bank jumped after the park opened a new branch and Lily bought a big red ball.";

    private DecisionsClient Client() => new(new ApiKeyCredential("unused"), new DecisionsClientOptions { Endpoint = new Uri(f.Url, "v1") });

    private static DecisionsInputTextInstructionsPart[] Text(string s) => [new(s)];

    /// <summary>A predicate, a choice with a boolean, a string and a multi-token value, and a three-level score.</summary>
    private static DecisionCreationOptions Request(string model, string input = Input, string? cacheKey = null) => new(
        [new DecisionsUserMessageItem([new DecisionsInputTextContentPart(input)])], model,
        [
            new DecisionsPredicateQuestion(Text("The text talks about a price going up.")) { Name = "up" },
            new DecisionsChoiceQuestion([new DecisionsChoice("positive") { Description = "good news" }, new DecisionsChoice("very strongly negative"), new DecisionsChoice(false)],
                Text("What is the sentiment of the text?")) { Name = "sentiment" },
            new DecisionsScoreQuestion(Text("How relevant is the text to a bank?"), [new DecisionsScoreLevel("low"), new DecisionsScoreLevel("medium"), new DecisionsScoreLevel("high") { Description = "about banks" }]),
        ]) { PromptCacheKey = cacheKey };

    /// <summary>The same questions as the library's records, to render the prompts the reference scores.</summary>
    private static readonly DecisionQuestion[] Questions =
    [
        new PredicateQuestion("The text talks about a price going up.", "up"),
        new ChoiceQuestion("What is the sentiment of the text?", [new(DecisionValue.Of("positive"), "good news"), new(DecisionValue.Of("very strongly negative")), new(DecisionValue.Of(false))], "sentiment"),
        new ScoreQuestion("How relevant is the text to a bank?", [new("low"), new("medium"), new("high", "about banks")]),
    ];

    /// <summary>Per question, the options' probabilities from <see cref="ChoiceScorer.Score"/> on the plain rendering.</summary>
    private double[][] Reference(bool adapter, string input = Input)
    {
        using var model = f.LoadReference(adapter);
        return Questions.Select(q =>
        {
            string context = DecisionPrompt.Context(null, [new ChatTurn("user", input)], q);
            var ll = ChoiceScorer.Score(model, f.Tokenizer, [new Example(context, "")], q.Options, batchSize: 4)[0];
            double max = ll.Max();
            var e = ll.Select(x => Math.Exp(x - max)).ToArray();
            return e.Select(x => x / e.Sum()).ToArray();
        }).ToArray();
    }

    [Theory]
    [InlineData(DecisionsFixture.BaseName, false)]
    [InlineData(DecisionsFixture.Adapter, true)]
    public void ProbabilitiesEqualEvalChoiceModeOnTheSamePrompt(string model, bool adapter)
    {
        var expected = Reference(adapter);
        var result = Client().CreateDecision(Request(model, cacheKey: $"equal-{model}")).Value;
        Assert.Equal(model, result.Model);
        Assert.Equal(3, result.Answers.Count);

        var up = Assert.IsType<DecisionsPredicateAnswer>(result.Answers[0]);
        Assert.Equal("up", up.Name);
        Assert.Equal(expected[0][0], up.Probability, 1e-4);

        var sentiment = Assert.IsType<DecisionsChoiceAnswer>(result.Answers[1]);
        Assert.Equal("sentiment", sentiment.Name);
        for (int i = 0; i < 3; i++) Assert.Equal(expected[1][i], sentiment.Probabilities[i].Probability, 1e-4);
        Assert.Equal("positive", sentiment.Probabilities[0].Value.StringValue);
        Assert.Equal("very strongly negative", sentiment.Probabilities[1].Value.StringValue);
        Assert.False(sentiment.Probabilities[2].Value.BooleanValue); // a boolean stays a boolean
        int best = Array.IndexOf(expected[1], expected[1].Max());
        Assert.Equal(best == 2 ? "False" : sentiment.Probabilities[best].Value.StringValue, sentiment.Choice.BooleanValue?.ToString() ?? sentiment.Choice.StringValue);
        double entropy = -expected[1].Sum(p => p * Math.Log(p));
        Assert.Equal(1 - entropy / Math.Log(3), sentiment.Confidence, 1e-4);

        var score = Assert.IsType<DecisionsScoreAnswer>(result.Answers[2]);
        Assert.Null(score.Name);
        Assert.Equal(["low", "medium", "high"], score.Probabilities.Select(p => p.Label));
        Assert.Equal([0L, 1, 2], score.Probabilities.Select(p => p.Value));
        for (int i = 0; i < 3; i++) Assert.Equal(expected[2][i], score.Probabilities[i].Probability, 1e-4);
        Assert.Equal(expected[2][1] + 2 * expected[2][2], score.Score, 1e-4);

        Assert.Equal(0, result.Usage.OutputTokenCount);
        Assert.Equal(result.Usage.InputTokenCount, result.Usage.TotalTokenCount);
        Assert.True(result.Usage.InputTokenCount > 0);
    }

    [Fact]
    public void TheAdapterChangesTheAnswers()
    {
        var client = Client();
        var base_ = client.CreateDecision(Request(DecisionsFixture.BaseName, cacheKey: "adapter-diff")).Value;
        var tuned = client.CreateDecision(Request(DecisionsFixture.Adapter, cacheKey: "adapter-diff")).Value;
        double largest = Enumerable.Range(0, 3).SelectMany(q => Probabilities(base_.Answers[q]).Zip(Probabilities(tuned.Answers[q]), (a, b) => Math.Abs(a - b))).Max();
        Assert.True(largest > 1e-3, $"the adapter moved no probability by more than {largest:E1}: the comparison would not catch a lost adapter");
    }

    [Fact]
    public void ASecondRequestReadsTheSharedInputFromTheCacheWithTheSameAnswers()
    {
        string input = Input + " A unique tail for the cache test.";
        var client = Client();
        var first = client.CreateDecision(Request(DecisionsFixture.BaseName, input, "tenant-1")).Value;
        var second = client.CreateDecision(Request(DecisionsFixture.BaseName, input, "tenant-1")).Value;
        var other = client.CreateDecision(Request(DecisionsFixture.BaseName, input, "tenant-2")).Value;
        Assert.Equal(0, first.Usage.InputTokenDetails.CachedTokenCount);
        Assert.True(second.Usage.InputTokenDetails.CachedTokenCount > 0);
        Assert.Equal(0, other.Usage.InputTokenDetails.CachedTokenCount); // another partition never hits
        Assert.Equal(first.Usage.InputTokenCount, second.Usage.InputTokenCount);
        var expected = Reference(adapter: false, input);
        foreach (var result in new[] { first, second, other })
            Assert.Equal(expected[0][0], ((DecisionsPredicateAnswer)result.Answers[0]).Probability, 1e-4);
    }

    [Fact]
    public void AQuestionThatDoesNotFitIsRefusedAndTheOthersAnswered()
    {
        string tooLong = string.Join(' ', Enumerable.Repeat("The little dog ran to the park and back again.", 60));
        var request = new DecisionCreationOptions([new DecisionsUserMessageItem([new DecisionsInputTextContentPart(Input)])], DecisionsFixture.BaseName,
            [new DecisionsPredicateQuestion(Text(tooLong)) { Name = "long" }, new DecisionsPredicateQuestion(Text("The text names a bank.")) { Name = "bank" }]);
        var result = Client().CreateDecision(request).Value;
        Assert.Equal("long", Assert.IsType<DecisionsRefusalAnswer>(result.Answers[0]).Name);
        var bank = Assert.IsType<DecisionsPredicateAnswer>(result.Answers[1]);
        Assert.InRange(bank.Probability, 0, 1);
    }

    [Fact]
    public async Task DecisionsRunInTheBatchBesideCompletionsAndOtherAdapters()
    {
        var alone = Client().CreateDecision(Request(DecisionsFixture.Adapter, cacheKey: "mixed")).Value;
        var completion = f.Http.PostAsJsonAsync("/v1/completions", new { model = DecisionsFixture.BaseName, prompt = "Once upon a time", max_tokens = 24, temperature = 0 });
        var decisions = Enumerable.Range(0, 3).Select(i => Client().CreateDecisionAsync(Request(i % 2 == 0 ? DecisionsFixture.Adapter : DecisionsFixture.BaseName, cacheKey: "mixed"))).ToList();
        await Task.WhenAll(decisions);
        Assert.Equal(HttpStatusCode.OK, (await completion).StatusCode);
        var together = (await decisions[0]).Value;
        for (int q = 0; q < 3; q++)
            Assert.Equal(Probabilities(alone.Answers[q]), Probabilities(together.Answers[q]), (a, b) => Math.Abs(a - b) < 1e-4);
    }

    private static IEnumerable<double> Probabilities(DecisionsAnswer a) => a switch
    {
        DecisionsPredicateAnswer p => [p.Probability],
        DecisionsChoiceAnswer c => c.Probabilities.Select(x => (double)x.Probability),
        DecisionsScoreAnswer s => s.Probabilities.Select(x => (double)x.Probability),
        _ => [],
    };

    [Theory]
    [InlineData("""{"input":"x"}""", "questions")]
    [InlineData("""{"input":"x","questions":[]}""", "questions")]
    [InlineData("""{"questions":[{"type":"predicate","instructions":"q"}]}""", "input")]
    [InlineData("""{"input":"x","questions":[{"type":"choice","instructions":"q","choices":[{"value":"a"}]}]}""", "questions[0].choices")]
    [InlineData("""{"input":"x","questions":[{"type":"choice","instructions":"q","choices":[{"value":"a"},{"value":"a"}]}]}""", "questions[0].choices[1].value")]
    [InlineData("""{"input":"x","questions":[{"type":"choice","instructions":"q","choices":[{"value":true},{"value":"true"}]}]}""", "questions[0].choices[1].value")]
    [InlineData("""{"input":"x","questions":[{"type":"choice","instructions":"q","choices":[{"value":"a"},{"value":3}]}]}""", "questions[0].choices[1].value")]
    [InlineData("""{"input":"x","questions":[{"type":"score","instructions":"q","levels":[{"label":"a"}]}]}""", "questions[0].levels")]
    [InlineData("""{"input":"x","questions":[{"type":"predicate","instructions":"q","name":"n"},{"type":"predicate","instructions":"r","name":"n"}]}""", "questions[1].name")]
    [InlineData("""{"input":"x","questions":[{"type":"rank","instructions":"q"}]}""", "questions[0].type")]
    [InlineData("""{"input":"x","questions":[{"type":"predicate","instructions":" "}]}""", "questions[0].instructions")]
    [InlineData("""{"input":"x","questions":[{"type":"predicate"}]}""", "questions[0].instructions")]
    [InlineData("""{"input":[{"type":"message","role":"user","content":[{"type":"input_image","image_url":"data:,"}]}],"questions":[{"type":"predicate","instructions":"q"}]}""", "input[0].content[0].type")]
    [InlineData("""{"input":[{"type":"function_call","call_id":"c","name":"f","arguments":"{}"}],"questions":[{"type":"predicate","instructions":"q"}]}""", "input[0].type")]
    [InlineData("""{"input":[{"role":"tool","content":"x"}],"questions":[{"type":"predicate","instructions":"q"}]}""", "input[0].role")]
    public async Task InvalidRequestsAreRefusedNamingTheField(string body, string param)
    {
        var json = JsonNode.Parse(body)!.AsObject();
        json["model"] = DecisionsFixture.BaseName;
        var response = await f.Http.PostAsync("/v1/decisions", new StringContent(json.ToJsonString(), System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!;
        Assert.Equal(param, error["param"]!.GetValue<string>());
    }

    [Fact]
    public async Task QuestionCountIsBoundedAndAnUnknownModelIs404()
    {
        var many = new JsonArray(Enumerable.Range(0, DecisionRequest.MaxQuestions + 1).Select(_ => (JsonNode)new JsonObject { ["type"] = "predicate", ["instructions"] = "q" }).ToArray());
        var tooMany = await f.Http.PostAsJsonAsync("/v1/decisions", new JsonObject { ["model"] = DecisionsFixture.BaseName, ["input"] = "x", ["questions"] = many });
        Assert.Equal(HttpStatusCode.BadRequest, tooMany.StatusCode);
        var unknown = await f.Http.PostAsJsonAsync("/v1/decisions", new JsonObject { ["model"] = "nope", ["input"] = "x", ["questions"] = new JsonArray(new JsonObject { ["type"] = "predicate", ["instructions"] = "q" }) });
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
    }
}
