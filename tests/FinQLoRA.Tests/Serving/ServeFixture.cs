using FinQLoRA.Loading;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using FinQLoRA.Adapters;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Server;
using FinQLoRA.Tests.Adapters;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Serving;

/// <summary>
/// A server on a free loopback port over the seeded Llama (stories260K's shapes, f32; no ../shared) with adapters <c>a</c> and <c>b</c> (seeded, nonzero B)
/// loaded at start and <c>c</c> waiting under the adapter root, plus the reference: what <c>finqlora generate --json</c>
/// prints for every prompt with the base and each adapter (greedy, <see cref="MaxTokens"/> tokens).
/// </summary>
public sealed class ServeFixture : ServerFixture
{
    public const string BaseName = "stories";
    public const int MaxTokens = 16;
    public static readonly string[] Prompts =
        ["Once upon a time", "The little dog", "Lily went to the park and", "Tom had a big", "One day, a girl named Sue", "The sun was"];
    public static readonly string[] Models = [BaseName, "a", "b"];

    public string AdapterRoot => Path.Combine(Dir, "adapters");
    /// <summary>Adapter c, under the root but not directly (those are served from the start): tests load it at runtime.</summary>
    public const string RuntimeAdapterPath = "runtime/c";
    private string AdapterDir(string name) => Path.Combine(AdapterRoot, name == "c" ? RuntimeAdapterPath : name);
    public HttpClient Http { get; private set; } = null!;
    /// <summary>(model, prompt index) → generate's text, output token count and finish reason.</summary>
    public Dictionary<(string Model, int Prompt), (string Text, int Tokens, string Finish)> Reference { get; } = [];
    /// <summary>(model, prompt index) → generate's prompt and output ids.</summary>
    public Dictionary<(string Model, int Prompt), (int[] Prompt, int[] Output)> ReferenceIds { get; } = [];

    public override async Task InitializeAsync()
    {
        string stories = SeededLlama.Folder;
        SaveAdapter("a", 1, ["q_proj", "v_proj"], 4);
        SaveAdapter("b", 2, ["up_proj", "down_proj", "o_proj"], 8);
        SaveAdapter("c", 3, ["k_proj", "gate_proj"], 2);
        RunGenerate(stories);

        await StartAsync(new ServerHostOptions
        {
            ModelPath = stories, Load = new ModelLoadOptions { DType = ScalarType.Float32 },
            Adapters = [("a", Path.Combine(AdapterRoot, "a")), ("b", Path.Combine(AdapterRoot, "b"))],
            Server = new ServerOptions { ServedModelName = BaseName, Port = 0, AdapterRoot = AdapterRoot, MaxBodyBytes = 64 * 1024 },
            MaxBatch = 8, MaxQueue = 64, MaxModelLen = 128,
        });
        Http = new HttpClient { BaseAddress = Url, Timeout = TimeSpan.FromMinutes(2) };
    }

    public override async Task DisposeAsync()
    {
        Http?.Dispose();
        await base.DisposeAsync();
    }

    private void SaveAdapter(string name, long seed, string[] targets, int rank)
    {
        using var model = SeededLlama.Load();
        var config = new LoraConfig { Rank = rank, Alpha = 2 * rank, TargetModules = targets };
        LoraInjector.Apply(model, config, seed);
        LoraTestKit.Randomize(model, "default", seed, scale: 0.2);
        PeftAdapterFiles.Save(AdapterDir(name), model, config);
    }

    /// <summary>The output's text as it reads after the prompt, computed apart from the decode paths' own rule: the
    /// whole sequence decoded less the prompt decoded (as vLLM's detokenizer gives it, the first token's leading space
    /// included), for the reference's text and for outputs cut shorter than generate's.</summary>
    public static string AfterPrompt(ITextTokenizer tokenizer, int[] prompt, int[] output)
    {
        string before = tokenizer.Decode(prompt);
        string all = tokenizer.Decode([.. prompt, .. output]);
        Assert.StartsWith(before, all);
        return all[before.Length..];
    }

    /// <summary>One run of the real CLI for all prompts and models (base, a, b, c).</summary>
    private void RunGenerate(string stories)
    {
        var tokenizer = ModelLoading.LoadTokenizer(stories);
        string[] models = [.. Models, "c"];
        string file = Path.Combine(Dir, "prompts.jsonl");
        var lines = models.SelectMany(m => Prompts.Select(p => new JsonObject { ["prompt"] = p, ["adapter"] = m == BaseName ? null : m }.ToJsonString()));
        File.WriteAllLines(file, lines);
        var (code, output) = CliProcess.Run(TimeSpan.FromMinutes(3), "generate", "--model", stories, "--dtype", "f32",
            "--adapter", $"a={Path.Combine(AdapterRoot, "a")}", "--adapter", $"b={Path.Combine(AdapterRoot, "b")}", "--adapter", $"c={AdapterDir("c")}",
            "--prompts", file, "--max-new-tokens", $"{MaxTokens}", "--json", "--batch-size", "6");
        Assert.True(code == 0, output);
        var results = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith('{')).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(models.Length * Prompts.Length, results.Count);
        for (int i = 0; i < results.Count; i++)
        {
            var g = Generated.Parse(results[i]);
            Assert.Equal(AfterPrompt(tokenizer, g.PromptIds, g.OutputIds), g.Text); // generate's text reads after the prompt
            ReferenceIds[(models[i / Prompts.Length], i % Prompts.Length)] = (g.PromptIds, g.OutputIds);
            Reference[(models[i / Prompts.Length], i % Prompts.Length)] = (g.Text, g.Tokens, g.Finish);
        }
    }

    public async Task<(int Status, JsonNode Body)> PostAsync(string path, object body, CancellationToken cancellation = default)
    {
        using var response = await Http.PostAsJsonAsync(path, body, cancellation);
        string text = await response.Content.ReadAsStringAsync(cancellation);
        return ((int)response.StatusCode, JsonNode.Parse(text.StartsWith('{') ? text : new JsonObject { ["text"] = text }.ToJsonString())!);
    }

    /// <summary>A greedy completion request for prompt <paramref name="prompt"/> of <paramref name="model"/>.</summary>
    public static JsonObject Greedy(string model, int prompt, int maxTokens = MaxTokens) => new()
    {
        ["model"] = model,
        ["prompt"] = Prompts[prompt],
        ["max_tokens"] = maxTokens,
        ["temperature"] = 0,
    };
}
