using System.Net.Http.Json;
using System.Text.Json.Nodes;
using FinQLoRA.Adapters;
using FinQLoRA.Inference;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Recipes;
using FinQLoRA.Server;
using FinQLoRA.Serving;
using FinQLoRA.Tests.Adapters;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Serving;

/// <summary>
/// Serving the families: a Qwen3 (q/k norms, biases on every attention projection) and a Mistral whose sliding window
/// (<see cref="SeededFamilies.Window"/> = 6 positions) is shorter than every prompt here, each with two adapters. The
/// KV slots keep every position; each layer's window comes from the slot mask (<see cref="AttentionMask.SlidingWindow"/>
/// counts a row's visible keys), so whole and chunked prefills and decode steps of rows at different lengths must all
/// give what generate gives.
/// </summary>
public sealed class FamilyServingTests
{
    private const int MaxTokens = 10;

    private static readonly string[] Prompts =
        ["Once upon a time there was a little dog", "The sun was hot and the park was full of", "Lily went to the park and saw a big red ball", "Tom had a big red ball and a small blue one"];

    private static readonly string?[] AdapterOfRequest = [null, "a", "b", "a", "b", null, "b", "a"];

    /// <summary>The family's seeded model with adapters <c>a</c> (q, v) and <c>b</c> (o, up, down) saved as PEFT folders.</summary>
    private static (string Model, IReadOnlyList<(string Name, string Dir)> Adapters) Write(string dir, string family)
    {
        string folder = SeededFamilies.Write(Path.Combine(dir, family), family);
        var adapters = new List<(string, string)>();
        foreach (var (name, seed, targets, rank) in new[] { ("a", 1L, new[] { "q_proj", "v_proj" }, 4), ("b", 2L, new[] { "o_proj", "up_proj", "down_proj" }, 8) })
        {
            using var model = SeededFamilies.Load(folder);
            var config = new LoraConfig { Rank = rank, Alpha = 2 * rank, TargetModules = targets };
            LoraInjector.Apply(model, config, seed);
            LoraTestKit.Randomize(model, "default", seed, scale: 0.3);
            string path = Path.Combine(dir, $"{family}-{name}");
            PeftAdapterFiles.Save(path, model, config);
            adapters.Add((name, path));
        }
        return (folder, adapters);
    }

    [Theory]
    [InlineData("qwen3")]
    [InlineData("mistral")]
    public async Task ServedGreedyAnswersWithMixedAdaptersEqualGenerates(string family)
    {
        using var dir = new TempFolder();
        var (folder, adapters) = Write(dir.Path, family);
        var load = new ModelLoadOptions { DType = ScalarType.Float32 };
        var prompts = AdapterOfRequest.Select((a, i) => new GenerateRecipePrompt(Prompts[i % Prompts.Length], a, NamesAdapter: true)).ToList();
        var generated = GenerateRecipe.Run(new GenerateRecipeOptions
        {
            ModelPath = folder, Load = load, Prompts = prompts, Adapters = adapters,
            Generation = new GenerationOptions { MaxNewTokens = MaxTokens }, BatchSize = 3,
        }).Outputs;
        if (family == "mistral")
            Assert.All(generated, g => Assert.True(g.PromptIds.Length > SeededFamilies.Window, "every prompt must be longer than the window"));
        // each adapter changes an answer of the base (request 4 is prompt 0 with b, request 1 prompt 1 with a), so
        // serving the wrong one would be seen
        Assert.NotEqual(generated[0].Text, generated[4].Text);
        Assert.NotEqual(generated[5].Text, generated[1].Text);

        await using var host = ServerHost.Open(new ServerHostOptions
        {
            ModelPath = folder, Load = load, Adapters = adapters,
            Server = new ServerOptions { ServedModelName = family, Port = 0 }, MaxBatch = 4, MaxQueue = 16, MaxModelLen = 128,
        });
        await host.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = host.Server.Url, Timeout = TimeSpan.FromMinutes(2) };
            // all at once: four slots, so rows of different adapters and lengths decode in one batch
            var answers = await Task.WhenAll(prompts.Select(async p =>
            {
                using var response = await http.PostAsJsonAsync("/v1/completions", new JsonObject
                {
                    ["model"] = p.Adapter ?? family, ["prompt"] = p.Text, ["max_tokens"] = MaxTokens, ["temperature"] = 0,
                });
                string body = await response.Content.ReadAsStringAsync();
                Assert.True(response.IsSuccessStatusCode, body);
                return JsonNode.Parse(body)!["choices"]![0]!["text"]!.GetValue<string>();
            }));
            for (int i = 0; i < prompts.Count; i++)
                Assert.Equal(generated[i].Text, answers[i]);
        }
        finally
        {
            await host.StopAsync();
        }
    }

    [Theory]
    [InlineData("mistral")]
    [InlineData("qwen3")]
    public void ChunkedPrefillIntoSlotsEqualsGenerateAndTheWindowBinds(string family)
    {
        using var dir = new TempFolder();
        var (folder, adapters) = Write(dir.Path, family);
        var tokenizer = ModelLoading.LoadTokenizer(folder);
        using var model = SeededFamilies.Load(folder);
        foreach (var (name, path) in adapters) PeftAdapterFiles.Load(path, model, name);
        model.eval();
        var requests = AdapterOfRequest.Select((a, i) => new EngineRequest(tokenizer.Encode(Prompts[i % Prompts.Length], addBos: true), a,
            new SamplingParams { MaxTokens = MaxTokens - i % 3 })).ToList();
        Assert.All(requests, r => Assert.True(r.PromptIds.Length > 3, "every prompt must take several chunks"));
        var reference = ServingEngineTests.GenerateAlone(model, tokenizer, requests);

        // three tokens a step: every prompt is prefilled in chunks, some while others decode; three slots for eight rows
        using (var engine = new ServingEngine(model, tokenizer, new EngineOptions { MaxBatch = 3, MaxModelLen = 128, PrefillTokensPerStep = 3 }))
        {
            var outputs = requests.Select(engine.Submit).ToList().Select(r => EngineCompletion.ReadAsync(r).GetAwaiter().GetResult()).ToList();
            for (int i = 0; i < requests.Count; i++)
                Assert.Equal(reference[i], outputs[i].TokenIds);
        }
        // and in whole prefills, several prompts of different lengths right-padded in one forward
        using (var engine = new ServingEngine(model, tokenizer, new EngineOptions { MaxBatch = 8, MaxModelLen = 128 }))
        {
            var outputs = requests.Select(engine.Submit).ToList().Select(r => EngineCompletion.ReadAsync(r).GetAwaiter().GetResult()).ToList();
            for (int i = 0; i < requests.Count; i++)
                Assert.Equal(reference[i], outputs[i].TokenIds);
        }

        if (family != "mistral") return;
        // The same weights without the window answer differently: the outputs above depend on it being honoured.
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "config.json")))!.AsObject();
        json["sliding_window"] = null; // absent would be MistralConfig's default of 4096
        File.WriteAllText(Path.Combine(folder, "config.json"), json.ToJsonString());
        using var unwindowed = SeededFamilies.Load(folder);
        Assert.Null(unwindowed.Config.SlidingWindow);
        foreach (var (name, path) in adapters) PeftAdapterFiles.Load(path, unwindowed, name);
        unwindowed.eval();
        var full = ServingEngineTests.GenerateAlone(unwindowed, tokenizer, requests);
        Assert.Contains(Enumerable.Range(0, requests.Count), i => !full[i].SequenceEqual(reference[i]));
    }

    /// <summary>The window derived from a decode step's slot mask: rows of 7, 2 and 4 cached tokens plus the one fed now,
    /// right-padded to the span of 8; with a window of 3 each row's query sees only its own last three positions.</summary>
    [Fact]
    public void TheWindowOfADecodeStepSeesEachRowsLastPositionsOnly()
    {
        using var scope = NewDisposeScope();
        var lengths = tensor(new long[] { 7, 2, 4 });
        var mask = AttentionMask.Build(AttentionMask.RightPadding(lengths + 1, 8), 3, 1, 7, CPU);
        var windowed = AttentionMask.SlidingWindow(mask, 3).eq(0).data<bool>().ToArray();
        bool[] expected =
        [
            false, false, false, false, false, true, true, true,   // positions 5, 6, 7 of 0..7
            true, true, true, false, false, false, false, false,   // 0, 1, 2: all it has
            false, false, true, true, true, false, false, false,   // 2, 3, 4 of 0..4
        ];
        Assert.Equal(expected, windowed);
        // a chunk of positions 4..6 after four cached: each query keeps itself and the two before it
        var chunk = AttentionMask.SlidingWindow(AttentionMask.Build(null, 1, 3, 4, CPU), 3).eq(0).data<bool>().ToArray();
        Assert.Equal(
        [
            false, false, true, true, true, false, false,
            false, false, false, true, true, true, false,
            false, false, false, false, true, true, true,
        ], chunk);
    }
}
