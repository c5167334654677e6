using System.ClientModel;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using FinQLoRA.Tests.Inference.Constraints;
using OpenAI;
using OpenAI.Chat;

namespace FinQLoRA.Tests.Serving;

/// <summary>
/// Structured outputs end to end on a random model: through the official OpenAI client (<c>response_format</c>
/// json_schema and json_object), typed HTTP for vLLM's <c>structured_outputs</c> (choice, regex, json) on both
/// endpoints, greedy and sampled; every answer parses and passes the independent <see cref="SchemaValidator"/> (or
/// .NET's Regex) with finish reason stop; unsupported keywords and bad regexes are 400s naming the field and path.
/// </summary>
public sealed class ServerStructuredOutputTests(StructuredServeFixture f) : IClassFixture<StructuredServeFixture>
{
    private const string Order = """
        {"type": "object", "additionalProperties": false,
         "$defs": {"money": {"type": "object", "properties": {"amount": {"type": "number"}, "currency": {"enum": ["USD", "EUR"]}}, "required": ["amount", "currency"]}},
         "properties": {
           "side": {"type": "string", "enum": ["buy", "sell"]},
           "ticker": {"type": "string", "pattern": "^[A-Z]{1,4}$"},
           "qty": {"type": "integer"},
           "limit": {"$ref": "#/$defs/money"},
           "notes": {"type": ["string", "null"], "maxLength": 6},
           "tags": {"type": "array", "items": {"type": "string", "maxLength": 3}, "minItems": 1, "maxItems": 2},
           "urgent": {"type": "boolean"},
           "venue": {"anyOf": [{"const": "NYSE"}, {"type": "null"}]},
           "memo": {"type": "string", "minLength": 2, "maxLength": 4}
         },
         "required": ["side", "ticker", "qty", "limit", "tags", "urgent"]}
        """;

    private ChatClient Chat() => new(StructuredServeFixture.ModelName, new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(f.Url, "v1") });

    private static IEnumerable<ChatCompletionOptions> GreedyAndSampled(ChatResponseFormat format, int maxTokens = 400)
    {
        yield return new ChatCompletionOptions { ResponseFormat = format, Temperature = 0, MaxOutputTokenCount = maxTokens };
        foreach (long seed in new long[] { 1, 2, 3 })
        {
            var sampled = new ChatCompletionOptions { ResponseFormat = format, Temperature = 1, MaxOutputTokenCount = maxTokens };
#pragma warning disable OPENAI001 // Seed is marked experimental in the client
            sampled.Seed = seed;
#pragma warning restore OPENAI001
            yield return sampled;
        }
    }

    [Fact]
    public void JsonSchemaAnswersThroughTheOpenAiClientParseAndValidate()
    {
        using var schema = JsonDocument.Parse(Order);
        var format = ChatResponseFormat.CreateJsonSchemaFormat("order", BinaryData.FromString(Order), jsonSchemaIsStrict: true);
        var contents = new List<string>();
        foreach (var options in GreedyAndSampled(format))
        {
            var completion = Chat().CompleteChat([new UserChatMessage("Place an order.")], options).Value;
            string content = completion.Content[0].Text;
            Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
            using var doc = JsonDocument.Parse(content);
            Assert.True(SchemaValidator.Validate(doc.RootElement, schema.RootElement) is null, $"{content}: {SchemaValidator.Validate(doc.RootElement, schema.RootElement)}");
            contents.Add(content);
        }
        Assert.True(contents.Distinct().Count() > 1, "the greedy and sampled answers are all the same");

        // streamed, the deltas add up to the same answer
        var streamed = new StringBuilder();
        ChatFinishReason? finish = null;
        foreach (var update in Chat().CompleteChatStreaming([new UserChatMessage("Place an order.")], GreedyAndSampled(format).First()))
        {
            foreach (var part in update.ContentUpdate) streamed.Append(part.Text);
            finish ??= update.FinishReason;
        }
        Assert.Equal(contents[0], streamed.ToString());
        Assert.Equal(ChatFinishReason.Stop, finish);
    }

    /// <summary>Log probabilities under a constraint are the raw model's (vLLM's default), not the masked logits':
    /// the top alternatives where the constraint forbids most tokens stay finite (they were −inf, which JSON cannot
    /// carry: a 500 the request fuzzer found), and the first position's equal those of the same prompt unconstrained.</summary>
    [Fact]
    public void LogprobsUnderAConstraintAreTheRawModelsAndFinite()
    {
        var constrained = new ChatCompletionOptions
        {
            ResponseFormat = ChatResponseFormat.CreateJsonObjectFormat(), Temperature = 0, MaxOutputTokenCount = 6,
            IncludeLogProbabilities = true, TopLogProbabilityCount = 5,
        };
        var free = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 6, IncludeLogProbabilities = true, TopLogProbabilityCount = 5 };
        var held = Chat().CompleteChat([new UserChatMessage("Any JSON.")], constrained).Value.ContentTokenLogProbabilities;
        var raw = Chat().CompleteChat([new UserChatMessage("Any JSON.")], free).Value.ContentTokenLogProbabilities;
        Assert.NotEmpty(held);
        Assert.All(held.SelectMany(t => t.TopLogProbabilities.Select(a => a.LogProbability).Prepend(t.LogProbability)),
            lp => Assert.True(float.IsFinite(lp) && lp <= 0, $"logprob {lp}"));
        Assert.Equal(raw[0].TopLogProbabilities.Select(a => a.Token), held[0].TopLogProbabilities.Select(a => a.Token));
        Assert.Equal(raw[0].TopLogProbabilities.Select(a => a.LogProbability), held[0].TopLogProbabilities.Select(a => a.LogProbability),
            (x, y) => Math.Abs(x - y) < 1e-5);
        Assert.StartsWith("{", held[0].Token.TrimStart()); // and the constraint still chose the token
    }

    [Fact]
    public void JsonObjectAnswersThatFinishAreObjects()
    {
        int finished = 0;
        foreach (var options in GreedyAndSampled(ChatResponseFormat.CreateJsonObjectFormat(), maxTokens: 120))
        {
            var completion = Chat().CompleteChat([new UserChatMessage("Any JSON.")], options).Value;
            if (completion.FinishReason == ChatFinishReason.Length) continue; // max_tokens may cut a value, as documented
            Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
            using var doc = JsonDocument.Parse(completion.Content[0].Text);
            Assert.Equal(JsonValueKind.Object, doc.RootElement.ValueKind);
            finished++;
        }
        Assert.True(finished > 0, "no json_object answer finished within 120 tokens");
    }

    [Fact]
    public async Task VllmStructuredOutputsOnBothEndpoints()
    {
        string[] choices = ["positive", "negative", "neutral"];
        const string regex = @"\d{3}-[a-z]{2,4}( ok)?";
        const string schemaText = """{"type":"object","properties":{"label":{"enum":["up","down"]},"score":{"type":"integer"}},"required":["label","score"]}""";
        using var schema = JsonDocument.Parse(schemaText);
        foreach (string endpoint in new[] { "/v1/completions", "/v1/chat/completions" })
            foreach (double temperature in new[] { 0.0, 1.0 })
            {
                var choice = await Ask(endpoint, new JsonObject { ["choice"] = new JsonArray([.. choices.Select(c => JsonValue.Create(c))]) }, temperature);
                Assert.Contains(choice, choices);
                var matched = await Ask(endpoint, new JsonObject { ["regex"] = regex }, temperature);
                Assert.Matches(new Regex($"^(?:{regex})\\z", RegexOptions.ECMAScript), matched);
                foreach (JsonNode json in new JsonNode[] { JsonNode.Parse(schemaText)!, JsonValue.Create(schemaText) })
                {
                    string content = await Ask(endpoint, new JsonObject { ["json"] = json }, temperature);
                    using var doc = JsonDocument.Parse(content);
                    Assert.Null(SchemaValidator.Validate(doc.RootElement, schema.RootElement));
                }
            }
    }

    /// <summary>One structured request; asserts finish reason stop and returns the text.</summary>
    private async Task<string> Ask(string endpoint, JsonObject structured, double temperature, long seed = 5)
    {
        var body = Body(endpoint, temperature, seed);
        body["structured_outputs"] = structured;
        var (status, json) = await Post(endpoint, body);
        Assert.True(status == 200, json.ToJsonString());
        var choice = json["choices"]![0]!;
        Assert.Equal("stop", choice["finish_reason"]!.GetValue<string>());
        return endpoint.Contains("chat") ? choice["message"]!["content"]!.GetValue<string>() : choice["text"]!.GetValue<string>();
    }

    private static JsonObject Body(string endpoint, double temperature, long seed, int maxTokens = 200)
    {
        var body = new JsonObject { ["model"] = StructuredServeFixture.ModelName, ["max_tokens"] = maxTokens, ["temperature"] = temperature, ["seed"] = seed };
        if (endpoint.Contains("chat")) body["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Classify: shares rose." });
        else body["prompt"] = "Shares rose. Sentiment:";
        return body;
    }

    private async Task<(int Status, JsonNode Body)> Post(string path, JsonObject body)
    {
        using var http = new HttpClient { BaseAddress = f.Url };
        using var response = await http.PostAsync(path, new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
        return ((int)response.StatusCode, JsonNode.Parse(await response.Content.ReadAsStringAsync())!);
    }

    [Fact]
    public async Task ConstrainedAndFreeRowsInOneBatchLeaveTheFreeRowsAsTheyWere()
    {
        var free = Body("/v1/completions", 0, 1, maxTokens: 24);
        var (_, alone) = await Post("/v1/completions", free);
        var constrained = Enumerable.Range(0, 5).Select(i =>
        {
            var b = Body("/v1/completions", 1, i);
            b["structured_outputs"] = new JsonObject { ["regex"] = "[a-z]{3,40}" };
            return Post("/v1/completions", b);
        }).ToList();
        var together = await Task.WhenAll(constrained.Append(Post("/v1/completions", free)));
        Assert.Equal(alone["choices"]![0]!["text"]!.GetValue<string>(), together[^1].Body["choices"]![0]!["text"]!.GetValue<string>());
        foreach (var (status, body) in together[..^1])
        {
            Assert.Equal(200, status);
            Assert.Matches("^[a-z]{3,40}$", body["choices"]![0]!["text"]!.GetValue<string>());
        }
    }

    [Fact]
    public async Task MaxTokensCanCutAValueWithFinishReasonLength()
    {
        var body = Body("/v1/chat/completions", 0, 1, maxTokens: 3);
        body["response_format"] = JsonNode.Parse("""{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}}}""");
        var (status, json) = await Post("/v1/chat/completions", body);
        Assert.Equal(200, status);
        Assert.Equal("length", json["choices"]![0]!["finish_reason"]!.GetValue<string>());
        Assert.StartsWith("{", json["choices"]![0]!["message"]!["content"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("/v1/chat/completions", """{"response_format":{"type":"json_schema","json_schema":{"name":"d","schema":{"type":"object","properties":{"date":{"type":"string","format":"date"}}}}}}""",
        "response_format.json_schema.schema", "unsupported JSON Schema keyword 'format' at #/properties/date")]
    [InlineData("/v1/chat/completions", """{"response_format":{"type":"json_schema","json_schema":{"name":"r","schema":{"$defs":{"n":{"type":"object","properties":{"next":{"$ref":"#/$defs/n"}}}},"$ref":"#/$defs/n"}}}}""",
        "response_format.json_schema.schema", "recursive $ref '#/$defs/n' is not supported at #/$defs/n/properties/next")]
    [InlineData("/v1/chat/completions", """{"response_format":{"type":"xml"}}""", "response_format.type", "'xml' is not one of text, json_object, json_schema")]
    [InlineData("/v1/completions", """{"structured_outputs":{"regex":"ab(?=c)"}}""", "structured_outputs.regex", "lookaround is not supported at position 2 of the regex")]
    [InlineData("/v1/chat/completions", """{"structured_outputs":{"regex":"a(b"}}""", "structured_outputs.regex", "missing ')' for the group opened at position 1")]
    [InlineData("/v1/completions", """{"structured_outputs":{"json":{"type":"integer","minimum":1}}}""", "structured_outputs.json", "unsupported JSON Schema keyword 'minimum' at #")]
    [InlineData("/v1/completions", """{"structured_outputs":{"json":"{not json"}}""", "structured_outputs.json", "is a string that is not JSON")]
    [InlineData("/v1/completions", """{"structured_outputs":{"choice":["a"],"regex":"a"}}""", "structured_outputs", "exactly one of choice, regex, json (got choice, regex)")]
    [InlineData("/v1/completions", """{"structured_outputs":{}}""", "structured_outputs", "exactly one of choice, regex, json (got none)")]
    [InlineData("/v1/completions", """{"structured_outputs":{"grammar":"root ::= x"}}""", "structured_outputs.grammar", "is not supported")]
    [InlineData("/v1/completions", """{"structured_outputs":{"choice":[]}}""", "structured_outputs.choice", "a non-empty list of strings")]
    [InlineData("/v1/chat/completions", """{"response_format":{"type":"json_object"},"structured_outputs":{"regex":"a"}}""", "structured_outputs", "not both")]
    public async Task ProblemsAre400sNamingTheFieldAndPath(string endpoint, string extra, string param, string message)
    {
        var body = Body(endpoint, 0, 1);
        foreach (var (k, v) in JsonNode.Parse(extra)!.AsObject()) body[k] = v!.DeepClone();
        var (status, json) = await Post(endpoint, body);
        Assert.Equal(400, status);
        Assert.Equal(param, json["error"]!["param"]!.GetValue<string>());
        Assert.Contains(message, json["error"]!["message"]!.GetValue<string>());
        Assert.Equal(0, f.Engine.Queued + f.Engine.Running);
    }

    [Fact]
    public async Task TheInProcessChatClientHonoursResponseFormat()
    {
        var client = new FinQLoRA.Serving.EngineChatClient(f.Engine, f.Host.ChatFormat!, StructuredServeFixture.ModelName);
        using var schema = JsonDocument.Parse(Order);
        var options = new Microsoft.Extensions.AI.ChatOptions
        {
            Temperature = 0, MaxOutputTokens = 400,
            ResponseFormat = Microsoft.Extensions.AI.ChatResponseFormat.ForJsonSchema(schema.RootElement.Clone(), "order"),
        };
        var response = await client.GetResponseAsync([new Microsoft.Extensions.AI.ChatMessage(Microsoft.Extensions.AI.ChatRole.User, "Place an order.")], options);
        Assert.Equal(Microsoft.Extensions.AI.ChatFinishReason.Stop, response.FinishReason);
        using var doc = JsonDocument.Parse(response.Text);
        Assert.Null(SchemaValidator.Validate(doc.RootElement, schema.RootElement));
        options.ResponseFormat = Microsoft.Extensions.AI.ChatResponseFormat.ForJsonSchema(JsonDocument.Parse("""{"type":"string","format":"email"}""").RootElement);
        var e = await Assert.ThrowsAsync<FinQLoRA.Serving.ServingException>(() => client.GetResponseAsync([new Microsoft.Extensions.AI.ChatMessage(Microsoft.Extensions.AI.ChatRole.User, "hi")], options));
        Assert.Contains("unsupported JSON Schema keyword 'format' at #", e.Message);
    }

    [Fact]
    public void TheOpenAiClientSeesAnUnsupportedKeywordAsA400()
    {
        var format = ChatResponseFormat.CreateJsonSchemaFormat("n", BinaryData.FromString("""{"oneOf":[{"type":"string"},{"type":"integer"}]}"""));
        var e = Assert.Throws<ClientResultException>(() => Chat().CompleteChat([new UserChatMessage("hi")], new ChatCompletionOptions { ResponseFormat = format }));
        Assert.Equal(400, e.Status);
        Assert.Contains("unsupported JSON Schema keyword 'oneOf' at #", e.Message);
    }
}
