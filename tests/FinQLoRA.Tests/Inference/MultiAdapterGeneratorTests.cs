using FinQLoRA.Loading;
using FinQLoRA.Adapters;
using FinQLoRA.Cli.Commands;
using FinQLoRA.Inference;
using FinQLoRA.Models;
using FinQLoRA.Tests.Adapters;
using FinQLoRA.Tests.Support;
using FinQLoRA.Serving;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Inference;

/// <summary><c>generate --adapter a=DIR --adapter b=DIR --prompts FILE</c> with a per-line <c>"adapter"</c>, on a seeded
/// Llama (only the routing to adapters is checked, not what the text says).</summary>
public sealed class MultiAdapterGeneratorTests : IDisposable
{
    private readonly TempFolder _temp = new();
    private static readonly string[] Prompts = ["Once upon a time", "The little dog", "Lily went to the park", "Tom had a big"];
    private static readonly GenerationOptions Greedy = new() { MaxNewTokens = 12 };

    public void Dispose() => _temp.Dispose();

    private string SaveAdapter(string name, long seed, string[] targets)
    {
        using var model = SeededLlama.Load();
        var config = new LoraConfig { Rank = 4, Alpha = 16, TargetModules = targets };
        LoraInjector.Apply(model, config, seed);
        LoraTestKit.Randomize(model, "default", seed, scale: 0.2);
        string dir = Path.Combine(_temp.Path, name);
        PeftAdapterFiles.Save(dir, model, config);
        return dir;
    }

    /// <summary>A separate process-like run: a fresh base, at most one adapter, all prompts.</summary>
    private static List<int[]> SingleRun(string? adapter, IReadOnlyList<int[]> ids)
    {
        using var bundle = ModelLoading.Load(SeededLlama.Folder, new ModelLoadOptions { DType = ScalarType.Float32 });
        if (adapter != null) PeftAdapterFiles.Load(adapter, bundle.Model);
        return new TextGenerator(bundle.Model, bundle.Tokenizer).GenerateIds(ids, Greedy, batchSize: 3).Select(r => r.OutputIds).ToList();
    }

    [Fact]
    public void TwoAdaptersAndTheBaseInOneFileMatchThreeSeparateRuns()
    {
        string a = SaveAdapter("a", 1, ["q_proj", "v_proj"]);
        string b = SaveAdapter("b", 2, ["up_proj", "down_proj"]);
        string file = Path.Combine(_temp.Path, "prompts.jsonl");
        // Interleaved on purpose: grouping must put the results back in file order.
        string[] picks = ["\"a\"", "null", "\"b\"", "\"a\"", "\"base\"", "\"b\""];
        File.WriteAllLines(file, picks.Select((p, i) => $"{{\"prompt\": \"{Prompts[i % Prompts.Length]}\", \"adapter\": {p}}}"));

        var lines = PromptFile.ReadLines(file);
        Assert.Equal(["a", null, "b", "a", null, "b"], lines.Select(l => l.Adapter));
        var specs = AdapterSpec.Parse([$"a={a}", $"b={b}"]);

        List<int[]> combined;
        using (var bundle = ModelLoading.Load(SeededLlama.Folder, new ModelLoadOptions { DType = ScalarType.Float32 }))
        {
            foreach (var s in specs) PeftAdapterFiles.Load(s.Dir, bundle.Model, s.Name);
            var generator = new TextGenerator(bundle.Model, bundle.Tokenizer);
            var requests = lines.Select(l => new GenerationRequest(bundle.Tokenizer.Encode(l.Prompt, addBos: true), l.Adapter)).ToList();
            combined = MultiAdapterGenerator.Generate(generator, requests, Greedy, batchSize: 3).Select(r => r.OutputIds).ToList();
            Assert.Equal("b", LoraInjector.ActiveAdapter(bundle.Model)); // the adapter active before (the last loaded) is restored
        }

        var tokenizer = ModelLoading.LoadTokenizer(SeededLlama.Folder);
        var ids = lines.Select(l => tokenizer.Encode(l.Prompt, addBos: true)).ToList();
        var separate = new Dictionary<string, List<int[]>>
        {
            ["a"] = SingleRun(a, ids), ["b"] = SingleRun(b, ids), ["base"] = SingleRun(null, ids),
        };
        for (int i = 0; i < lines.Count; i++)
            Assert.Equal(separate[lines[i].Adapter ?? "base"][i], combined[i]);
        // The three runs differ, so a wrong pick would be seen.
        Assert.NotEqual(separate["a"][0], separate["base"][0]);
        Assert.NotEqual(separate["b"][2], separate["base"][2]);
    }

    [Fact]
    public void UnknownAdapterInAPromptIsAUserError()
    {
        using var bundle = ModelLoading.Load(SeededLlama.Folder, new ModelLoadOptions { DType = ScalarType.Float32 });
        var generator = new TextGenerator(bundle.Model, bundle.Tokenizer);
        var e = Assert.Throws<UserInputException>(() => MultiAdapterGenerator.Generate(generator, [new GenerationRequest([1, 403], "fin")], Greedy));
        Assert.Contains("'fin'", e.Message);
    }

    [Fact]
    public void AdapterFlagsParse()
    {
        var specs = AdapterSpec.Parse(["runs/a/adapter", "fin=runs/b/adapter"]);
        Assert.Equal([new AdapterSpec("default", "runs/a/adapter"), new AdapterSpec("fin", "runs/b/adapter")], specs);
        Assert.Contains("reserved", Assert.Throws<UserInputException>(() => AdapterSpec.Parse(["base=x"])).Message);
        Assert.Contains("twice", Assert.Throws<UserInputException>(() => AdapterSpec.Parse(["a=x", "a=y"])).Message);
    }

    [Fact]
    public void PromptLineWithoutAdapterKeyIsToldFromAnExplicitBase()
    {
        string file = Path.Combine(_temp.Path, "p.jsonl");
        File.WriteAllLines(file, ["{\"prompt\": \"x\"}", "{\"prompt\": \"y\", \"adapter\": null}", "{\"prompt\": \"z\", \"adapter\": 3}"]);
        var e = Assert.Throws<UserInputException>(() => PromptFile.ReadLines(file));
        Assert.Contains(":3:", e.Message);
        File.WriteAllLines(file, ["{\"prompt\": \"x\"}", "{\"prompt\": \"y\", \"adapter\": null}"]);
        Assert.Equal([new PromptLine("x", null, false), new PromptLine("y", null, true)], PromptFile.ReadLines(file));
    }
}
