using FinQLoRA.Models.Families;
using FinQLoRA.Loading;
using System.Text.Json.Nodes;
using FinQLoRA.Data.Chat;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Demo;
using FinQLoRA.Models;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Models;

/// <summary>Llama 2/3/3.1/3.2 config variants: GQA, explicit head_dim, tied embeddings, llama3 RoPE scaling.</summary>
public sealed class LlamaFamilyTests
{
    [Fact]
    public void Llama31PresetsHaveMetasShapesAndParameterCounts()
    {
        var c8 = ModelPresets.Get("llama-3.1-8b")!;
        var c70 = ModelPresets.Get("llama-3.1-70b")!;
        Assert.Equal((4096, 14336, 32, 32, 8, 128, 128256), (c8.HiddenSize, c8.IntermediateSize, c8.NumLayers, c8.NumHeads, c8.NumKvHeads, c8.HeadDim, c8.VocabSize));
        Assert.Equal((8192, 28672, 80, 64, 8), (c70.HiddenSize, c70.IntermediateSize, c70.NumLayers, c70.NumHeads, c70.NumKvHeads));
        long Params(ModelConfig c) => 2L * c.VocabSize * c.HiddenSize + c.HiddenSize + c.NumLayers *
            (2L * c.HiddenSize + 2L * c.HiddenSize * c.QDim + 2L * c.HiddenSize * c.KvDim + 3L * c.HiddenSize * c.IntermediateSize);
        Assert.Equal(8_030_261_248, Params(c8));
        Assert.Equal(70_553_706_496, Params(c70));
    }

    [Fact]
    public void Llama3RopeScalingKeepsShortWavelengthsAndSlowsLongOnes()
    {
        var s = new RopeScaling("llama3", 8, 1, 4, 8192);
        // wavelength 2π/1 ≈ 6.3 < 2048: kept; 2π/1e-4 ≈ 62832 > 8192: divided by 8;
        // 2π/0.0015 ≈ 4189 lies between: smooth = (8192/4189 − 1)/3 ≈ 0.3185 → (1−s)·f/8 + s·f
        double[] scaled = s.Apply([1.0, 1e-4, 0.0015], theta: 500000, dim: 6);
        Assert.Equal(1.0, scaled[0], 12);
        Assert.Equal(1.25e-5, scaled[1], 12);
        double smooth = (8192 / (2 * Math.PI / 0.0015) - 1) / 3;
        Assert.Equal((1 - smooth) * 0.0015 / 8 + smooth * 0.0015, scaled[2], 12);
    }

    [Fact]
    public void Llama32StyleConfigWithTiedEmbeddingsHeadDimAndRopeScalingRuns()
    {
        using var dir = new TempFolder();
        var config = new ModelConfig
        {
            HiddenSize = 96, IntermediateSize = 160, NumLayers = 2, NumHeads = 6, NumKvHeads = 2, HeadDim = 24, VocabSize = 300,
            MaxPositionEmbeddings = 128, TieWordEmbeddings = true, RopeTheta = 500000,
            RopeScaling = new RopeScaling("llama3", 32, 1, 4, 8192),
        };
        RandomLlama.WriteHfFolder(config, dir.Path, seed: 5);
        var reloaded = ModelConfig.Load(dir.Path);
        Assert.Equal(config with { TorchDtype = "float32" }, reloaded with { EosTokenIds = config.EosTokenIds, QuantizationConfig = null });
        using var model = ModelLoading.LoadModel(dir.Path, new ModelLoadOptions { DType = ScalarType.Float32 });
        Assert.Null(model.LmHead);
        using var noGrad = no_grad();
        using var ids = tensor(new long[] { 1, 5, 9, 200, 7 }).unsqueeze(0);
        using var full = model.Forward(ids);
        Assert.Equal(new long[] { 1, 5, 300 }, full.shape);
        // KV-cache decoding equals the full forward at every position.
        using var cache = new KvCache(config, 1, 16, ScalarType.Float32, CPU);
        for (int t = 0; t < 5; t++)
        {
            using var step = model.Forward(ids.narrow(1, t, 1), cache: cache);
            TensorAssert.MaxDiffBelow(full[0, t], step[0, 0], 1e-4, $"position {t}");
        }
    }

    [Fact]
    public void Llama3ChatTemplateHasOneBosAndTheAssistantHeader()
    {
        string text = ChatTemplate.RequestPrompt(ChatTemplateKind.Llama3, [new("system", "You are a analyst."), new("user", "What is EPS?")]);
        Assert.Equal("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a analyst.<|eot_id|>" +
            "<|start_header_id|>user<|end_header_id|>\n\nWhat is EPS?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", text);
        Assert.Throws<UserInputException>(() => ChatTemplate.RequestPrompt(ChatTemplateKind.Llama3, [new("robot", "x")]));
    }

    [SharedFact]
    public void Llama3ChatPromptEncodesWithSpecialIdsAndASingleBos()
    {
        var tokenizer = TokenizerLoader.FromHuggingFace(Shared.File("models/llama-3.1-tokenizer"));
        int[] ids = tokenizer.Encode(ChatTemplate.RequestPrompt(ChatTemplateKind.Llama3, [new("user", "What is EPS?")]), addBos: false);
        Assert.Equal(new[] { 128000, 128006, 882, 128007, 271, 3923, 374, 41707, 30, 128009, 128006, 78191, 128007, 271 }, ids);
        _ = JsonNode.Parse("{}");
    }
}
