using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using FinQLoRA.Data.Chat;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Serving.Operations;

/// <summary>vLLM's /tokenize and /detokenize: the ids the tokenizer gives (and that completions and chat count), vLLM's
/// request and response shapes, each id's vocabulary entry read from tokenizer.json apart from the server, and the
/// key required as on /v1.</summary>
[Collection(OperationsCollection.Name)]
public sealed class TokenizeTests(OperationsFixture f)
{
    private const string M = OperationsFixture.ModelName;
    private static readonly string[] ResponseFields = ["count", "max_model_len", "tokens", "token_strs"];

    [Fact]
    public async Task APromptBecomesTheTokenizersIdsAndTheCountCompletionsBill()
    {
        var tokenizer = f.Priority.Tokenizer;
        string prompt = "Once upon a time, a bond paid 5%.";
        var (status, body) = await PostAsync("/tokenize", new JsonObject { ["model"] = M, ["prompt"] = prompt });
        Assert.Equal(200, status);
        Assert.Equal(ResponseFields, body.AsObject().Select(p => p.Key)); // vLLM's fields, in its order
        var ids = Ids(body["tokens"]);
        Assert.Equal(tokenizer.Encode(prompt, addBos: tokenizer.AddsBosByDefault), ids); // add_special_tokens defaults to true
        Assert.Equal(ids.Length, body["count"]!.GetValue<int>());
        Assert.Equal(OperationsFixture.MaxModelLen, body["max_model_len"]!.GetValue<int>());
        Assert.Null(body["token_strs"]); // written as null unless asked for

        var (_, completion) = await PostAsync("/v1/completions", new JsonObject { ["model"] = M, ["prompt"] = prompt, ["max_tokens"] = 1 });
        Assert.Equal(ids.Length, completion["usage"]!["prompt_tokens"]!.GetValue<int>());

        var (_, plain) = await PostAsync("/tokenize", new JsonObject { ["prompt"] = prompt, ["add_special_tokens"] = false }); // model is optional
        Assert.Equal(tokenizer.Encode(prompt, addBos: false), Ids(plain["tokens"]));
        Assert.Equal(ids.Length - 1, Ids(plain["tokens"]).Length); // this tokenizer adds BOS by default
    }

    [Fact]
    public async Task MessagesAreRenderedWithTheChatTemplateAsChatCompletionsRendersThem()
    {
        var tokenizer = f.Priority.Tokenizer;
        var messages = new JsonArray(
            new JsonObject { ["role"] = "system", ["content"] = "You answer briefly." },
            new JsonObject { ["role"] = "user", ["content"] = "What is a bond?" });
        var (status, body) = await PostAsync("/tokenize", new JsonObject { ["model"] = OperationsFixture.Adapter, ["messages"] = messages.DeepClone() });
        Assert.Equal(200, status);
        var ids = Ids(body["tokens"]);
        var format = f.Priority.ChatFormat!;
        Assert.Equal(tokenizer.Encode(format.Render([new ChatTurn("system", "You answer briefly."), new ChatTurn("user", "What is a bond?")]), addBos: false), ids);
        var (_, chat) = await PostAsync("/v1/chat/completions", new JsonObject { ["model"] = M, ["messages"] = messages.DeepClone(), ["max_tokens"] = 1 });
        Assert.Equal(ids.Length, chat["usage"]!["prompt_tokens"]!.GetValue<int>());

        // without the generation prompt: the same ids less Llama 3's opened assistant header
        var (_, closed) = await PostAsync("/tokenize", new JsonObject { ["messages"] = messages.DeepClone(), ["add_generation_prompt"] = false });
        var without = Ids(closed["tokens"]);
        Assert.Equal(without, ids[..without.Length]);
        Assert.Equal("<|start_header_id|>assistant<|end_header_id|>\n\n", await DetokenizeAsync(ids[without.Length..]));
        Assert.Equal(SeededTokenizer.Llama3Bos, ids[0]); // the template's own BOS, once
        Assert.NotEqual(SeededTokenizer.Llama3Bos, ids[1]);

        // add_special_tokens adds the tokenizer's BOS before the template's, as Hugging Face and vLLM do
        var (_, doubled) = await PostAsync("/tokenize", new JsonObject { ["messages"] = messages.DeepClone(), ["add_special_tokens"] = true });
        Assert.Equal([ids[0], .. ids], Ids(doubled["tokens"]));
    }

    [Fact]
    public async Task TokenStringsAreTheVocabularyEntriesOfTokenizerJson()
    {
        // id → entry read from the file with System.Text.Json: model.vocab and added_tokens
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(f.ModelDir, "tokenizer.json")));
        var entries = new Dictionary<int, string>();
        foreach (var p in doc.RootElement.GetProperty("model").GetProperty("vocab").EnumerateObject()) entries[p.Value.GetInt32()] = p.Name;
        foreach (var t in doc.RootElement.GetProperty("added_tokens").EnumerateArray()) entries[t.GetProperty("id").GetInt32()] = t.GetProperty("content").GetString()!;

        string prompt = "Tom had a big\ndog. ☃";
        var (status, body) = await PostAsync("/tokenize", new JsonObject { ["prompt"] = prompt, ["return_token_strs"] = true });
        Assert.Equal(200, status);
        var ids = Ids(body["tokens"]);
        var strs = body["token_strs"]!.AsArray().Select(s => s!.GetValue<string>()).ToArray();
        Assert.Equal(ids.Select(id => entries[id]), strs);
        Assert.Contains("<0x0A>", strs); // a byte piece is named as the file names it, not as the byte it decodes to
        Assert.StartsWith("<|begin_of_text|>", strs[0]);
    }

    [Fact]
    public async Task DetokenizeDecodesTheIdsAndRoundTrips()
    {
        var tokenizer = f.Priority.Tokenizer;
        string text = "Lily went to the park and saw a red ball.";
        var (_, tokenized) = await PostAsync("/tokenize", new JsonObject { ["prompt"] = text, ["add_special_tokens"] = false });
        var ids = Ids(tokenized["tokens"]);
        var (status, body) = await PostAsync("/detokenize", new JsonObject { ["model"] = M, ["tokens"] = new JsonArray(ids.Select(i => (JsonNode)i).ToArray()) });
        Assert.Equal(200, status);
        Assert.Equal(["prompt"], body.AsObject().Select(p => p.Key));
        Assert.Equal(text, body["prompt"]!.GetValue<string>());

        // special tokens are written out (Hugging Face's decode as vLLM calls it), and such text tokenizes back to the ids
        var chat = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Is cash an asset?" });
        var (_, rendered) = await PostAsync("/tokenize", new JsonObject { ["messages"] = chat });
        var chatIds = Ids(rendered["tokens"]);
        string chatText = await DetokenizeAsync(chatIds);
        Assert.Equal("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nIs cash an asset?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", chatText);
        Assert.Equal(chatIds, tokenizer.Encode(chatText, addBos: false));
    }

    [Fact]
    public async Task BadRequestsAreRefusedNamingTheField()
    {
        async Task Refused(string path, JsonObject body, int status, string param)
        {
            var (got, answer) = await PostAsync(path, body);
            Assert.True(got == status, answer.ToJsonString());
            Assert.Equal(param, answer["error"]!["param"]?.GetValue<string>());
        }
        await Refused("/tokenize", new JsonObject { ["model"] = "nope", ["prompt"] = "x" }, 404, "model");
        await Refused("/tokenize", new JsonObject { ["model"] = M }, 400, "prompt");
        await Refused("/tokenize", new JsonObject { ["prompt"] = "x", ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "x" }) }, 400, "prompt");
        await Refused("/tokenize", new JsonObject { ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "x" }), ["continue_final_message"] = true }, 400, "continue_final_message");
        await Refused("/tokenize", new JsonObject { ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "x" }), ["chat_template"] = "{{ x }}" }, 400, "chat_template");
        await Refused("/tokenize", new JsonObject { ["prompt"] = 5 }, 400, "prompt");
        await Refused("/detokenize", new JsonObject { ["tokens"] = new JsonArray(1, 100000) }, 400, "tokens");
        await Refused("/detokenize", new JsonObject { ["tokens"] = new JsonArray(1, 2.5) }, 400, "tokens");
        await Refused("/detokenize", new JsonObject { ["tokens"] = "1 2" }, 400, "tokens");
        await Refused("/detokenize", new JsonObject { ["model"] = M }, 400, "tokens");
        await Refused("/detokenize", new JsonObject { ["model"] = "nope", ["tokens"] = new JsonArray(1) }, 404, "model");
    }

    [Fact]
    public async Task TheKeyIsRequiredAsOnV1()
    {
        using var anonymous = new HttpClient { BaseAddress = f.Priority.Url };
        foreach (string path in new[] { "/tokenize", "/detokenize" })
        {
            using var response = await anonymous.PostAsJsonAsync(path, new JsonObject { ["prompt"] = "x", ["tokens"] = new JsonArray(1) });
            Assert.Equal(401, (int)response.StatusCode);
            Assert.Contains("invalid_api_key", await response.Content.ReadAsStringAsync());
        }
    }

    private async Task<string> DetokenizeAsync(int[] ids)
    {
        var (status, body) = await PostAsync("/detokenize", new JsonObject { ["tokens"] = new JsonArray(ids.Select(i => (JsonNode)i).ToArray()) });
        Assert.True(status == 200, body.ToJsonString());
        return body["prompt"]!.GetValue<string>();
    }

    private Task<(int Status, JsonNode Body)> PostAsync(string path, JsonObject body) => OperationsFixture.PostAsync(f.Http, path, body);

    private static int[] Ids(JsonNode? array) => array!.AsArray().Select(x => x!.GetValue<int>()).ToArray();
}
