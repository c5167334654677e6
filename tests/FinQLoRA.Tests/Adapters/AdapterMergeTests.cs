using FinQLoRA.Loading;
using System.Text.Json.Nodes;
using FinQLoRA.Adapters;
using FinQLoRA.Recipes;
using FinQLoRA.Models;
using FinQLoRA.Formats.Checkpoints;
using FinQLoRA.Quantization;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Adapters;

/// <summary>
/// <c>finqlora merge</c> end to end (library <see cref="AdapterMerge"/>): an adapter folder merged into a seeded Llama
/// with stories260K's shapes gives a folder/GGUF whose logits equal base + adapter, laid out exactly like the base.
/// </summary>
public sealed class AdapterMergeTests : IDisposable
{
    private static string BaseFolder => SeededLlama.Folder;
    private readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    /// <summary>Saves a randomized adapter (B ≠ 0, so merging changes the weights) and returns its folder.</summary>
    private string SaveAdapter(bool dora, LoraConfig? config = null)
    {
        config ??= new LoraConfig { Rank = 4, Alpha = 32, TargetModules = ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj"], UseDora = dora };
        using var model = SeededLlama.Load();
        LoraInjector.Apply(model, config, seed: 3);
        LoraTestKit.Randomize(model, "default", seed: 5);
        string dir = Path.Combine(_temp.Path, dora ? "dora" : "lora");
        PeftAdapterFiles.Save(dir, model, config);
        return dir;
    }

    /// <summary>Logits of the base (loaded with <paramref name="load"/>) with the adapter folder applied unmerged.</summary>
    private static Tensor AdapterLogits(string adapter, ModelLoadOptions load)
    {
        using var model = ModelLoading.LoadModel(BaseFolder, load);
        PeftAdapterFiles.Load(adapter, model);
        return LoraTestKit.Logits(model);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void MergedHfFolderHasTheBaseLayoutAndTheAdaptersLogits(bool dora)
    {
        string adapter = SaveAdapter(dora);
        string outDir = Path.Combine(_temp.Path, "merged");
        var result = AdapterMerge.Run(new AdapterMergeOptions { ModelPath = BaseFolder, AdapterDir = adapter, OutPath = outDir, DType = ScalarType.Float32 });
        Assert.Equal(5 * 5, result.MergedProjections); // 5 layers × 5 target projections
        Assert.False(result.DequantizedBase);

        using (var merged = new SafetensorsFile(Path.Combine(outDir, "model.safetensors")))
        using (var original = new SafetensorsFile(Path.Combine(BaseFolder, "model.safetensors")))
        {
            var shapes = original.Entries.ToDictionary(e => e.Name, e => string.Join(",", e.Shape));
            Assert.Equal(shapes.Keys.Order(), merged.Entries.Select(e => e.Name).Order());
            foreach (var e in merged.Entries) Assert.Equal(shapes[e.Name], string.Join(",", e.Shape));
        }
        var baseConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(BaseFolder, "config.json")))!.AsObject();
        var mergedConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "config.json")))!.AsObject();
        foreach (string key in new[] { "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "vocab_size", "intermediate_size" })
            Assert.Equal(baseConfig[key]!.ToJsonString(), mergedConfig[key]!.ToJsonString());
        Assert.Equal(File.ReadAllText(Path.Combine(BaseFolder, "tokenizer.json")), File.ReadAllText(Path.Combine(outDir, "tokenizer.json")));

        using var expected = AdapterLogits(adapter, new ModelLoadOptions { DType = ScalarType.Float32 });
        using var baseModel = SeededLlama.Load();
        using var baseLogits = LoraTestKit.Logits(baseModel);
        using var mergedModel = ModelLoading.LoadModel(outDir, new ModelLoadOptions { DType = ScalarType.Float32 });
        using var logits = LoraTestKit.Logits(mergedModel);
        double diff = TensorAssert.RelativeMaxDiff(logits, expected);
        Assert.True(diff < 1e-5, $"merged vs base+adapter: relative max |diff| {diff}");
        Assert.True(TensorAssert.RelativeMaxDiff(baseLogits, expected) > 1e-2, "the adapter changes nothing; the test could not see a bad merge");
    }

    [Fact]
    public void FourBitBaseIsMergedOntoItsDequantizedWeights()
    {
        string adapter = SaveAdapter(dora: false);
        string outDir = Path.Combine(_temp.Path, "merged4");
        var result = AdapterMerge.Run(new AdapterMergeOptions
        {
            ModelPath = BaseFolder, AdapterDir = adapter, OutPath = outDir, DType = ScalarType.Float32, Bits = 4, Quant = FourBitType.Nf4,
        });
        Assert.True(result.DequantizedBase);

        // The adapter was trained against the 4-bit base: the merged model must reproduce 4-bit base + adapter.
        using var expected = AdapterLogits(adapter, new ModelLoadOptions { DType = ScalarType.Float32 }.WithBits(4, FourBitType.Nf4));
        using var mergedModel = ModelLoading.LoadModel(outDir, new ModelLoadOptions { DType = ScalarType.Float32 });
        using var logits = LoraTestKit.Logits(mergedModel);
        double diff = TensorAssert.RelativeMaxDiff(logits, expected);
        Assert.True(diff < 1e-5, $"merged (4-bit base) vs 4-bit base+adapter: relative max |diff| {diff}");
        using var fullPrecision = AdapterLogits(adapter, new ModelLoadOptions { DType = ScalarType.Float32 });
        Assert.True(TensorAssert.RelativeMaxDiff(logits, fullPrecision) > 1e-4, "4-bit rounding left no trace; the test cannot tell which base was merged");
    }

    [Fact]
    public void GgufOutputLoadsWithTheAdaptersLogits()
    {
        string adapter = SaveAdapter(dora: true); // DoRA cannot go to llama.cpp as an adapter, only merged
        string outFile = Path.Combine(_temp.Path, "merged.gguf");
        var result = AdapterMerge.Run(new AdapterMergeOptions { ModelPath = BaseFolder, AdapterDir = adapter, OutPath = outFile, To = "gguf", DType = ScalarType.Float32 });
        Assert.Equal("gguf", result.Format);
        Assert.Equal(new FileInfo(outFile).Length, result.Bytes);
        Assert.Empty(Directory.GetDirectories(_temp.Path, ".merge-*")); // the intermediate HF folder is gone

        using var expected = AdapterLogits(adapter, new ModelLoadOptions { DType = ScalarType.Float32 });
        using var merged = ModelLoading.LoadModel(outFile, new ModelLoadOptions { DType = ScalarType.Float32 });
        using var logits = LoraTestKit.Logits(merged);
        double diff = TensorAssert.RelativeMaxDiff(logits, expected);
        Assert.True(diff < 1e-5, $"merged GGUF vs base+adapter: relative max |diff| {diff}");
    }

    [Fact]
    public void UnknownOutputFormatIsAUserError()
    {
        var e = Assert.Throws<UserInputException>(() => AdapterMerge.Run(new AdapterMergeOptions { ModelPath = BaseFolder, AdapterDir = _temp.Path, OutPath = _temp.Path, To = "onnx" }));
        Assert.Contains("--to", FinQLoRA.Cli.FlagNames.Render(e));
    }
}
