using FinQLoRA.Models;
using FinQLoRA.Models.Families;
using FinQLoRA.Planning;
using FinQLoRA.Quantization;
using FinQLoRA.Tests.Cli;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Quantization;

/// <summary>The memory planner's presets of every family, against the parameter counts their publishers state, and the
/// family tensors and activations the planner counts.</summary>
public sealed class FamilyMemoryPlannerTests
{
    /// <summary>Exact counts where the publisher gives one (Ministral's model card: 8,019,808,256; Phi-4-mini:
    /// 3,836,021,760), else the sum of the published config's tensors, checked against the rounded total on the model
    /// card (Qwen2.5-7B 7.61B, Qwen3-8B 8.2B, Gemma-2-9B 9.24B, Llama 3.1 8.03B / 70.6B). Gemma 3 12B's text model is
    /// Keras's published gemma3_12b_text count, 11,765,788,416 at a 262,144-token vocabulary, plus Hugging Face's 64 more
    /// rows of 3,840 (vocab_size 262,208).</summary>
    [Theory]
    [InlineData("llama-3.1-8b", 8_030_261_248, 8.03)]
    [InlineData("llama-3.1-70b", 70_553_706_496, 70.55)]
    [InlineData("qwen2.5-7b", 7_615_616_512, 7.62)]
    [InlineData("qwen3-8b", 8_190_735_360, 8.19)]
    [InlineData("ministral-8b", 8_019_808_256, 8.02)]
    [InlineData("gemma-2-9b", 9_241_705_984, 9.24)]
    [InlineData("gemma-3-12b", 11_765_788_416 + 64 * 3840, 11.77)]
    [InlineData("phi-4-mini", 3_836_021_760, 3.84)]
    public void PresetsHaveThePublishedParameterCounts(string name, long parameters, double billions)
    {
        var c = ModelPresets.Get(name)!;
        Assert.Equal(parameters, MemoryPlanner.ParameterCount(c));
        Assert.Equal(billions, Math.Round(parameters / 1e9, 2));
        // the planner's bf16 weights are two bytes for each of them: every bias, q/k norm, sandwich norm and fused
        // projection counted, a tied head once
        Assert.Equal(2 * parameters, MemoryPlanner.Weights(c, new QuantizationOptions(Bits: 16)).Sum(x => x.Bytes));
    }

    [Fact]
    public void PresetNamesAreTheOnesHelpLists() =>
        Assert.Equal(ModelPresets.NameList, string.Join(", ", ModelPresets.Names));

    [Fact]
    public void PresetsTakeTheirFamilysSwitchesFromTheirConfigJson()
    {
        var qwen25 = ModelPresets.Get("qwen2.5-7b")!;
        Assert.Equal(("qwen2", true, false, false, (int?)null), (qwen25.ModelType, qwen25.QkvBias, qwen25.OutputBias, qwen25.QkNorm, qwen25.SlidingWindow));
        var qwen3 = ModelPresets.Get("qwen3-8b")!;
        Assert.Equal(("qwen3", false, true, 128), (qwen3.ModelType, qwen3.QkvBias, qwen3.QkNorm, qwen3.HeadDim));
        var ministral = ModelPresets.Get("ministral-8b")!;
        Assert.Equal(32768, ministral.SlidingWindow);
        Assert.All(Enumerable.Range(0, 36), i => Assert.Equal(32768, ministral.WindowOf(i)));
        var gemma2 = ModelPresets.Get("gemma-2-9b")!;
        Assert.Equal((50.0, 30.0, true, true, 1.0, Activation.GeluTanh), (gemma2.AttentionSoftcap, gemma2.FinalSoftcap, gemma2.SandwichNorms, gemma2.TieWordEmbeddings, gemma2.NormOffset, gemma2.Activation));
        Assert.Equal([4096, null, 4096, null], Enumerable.Range(0, 4).Select(gemma2.WindowOf));
        Assert.True(MemoryPlanner.ExplicitAttention(gemma2));
        var gemma3 = ModelPresets.Get("gemma-3-12b")!;
        Assert.Equal((true, (double?)null, 10000.0, "linear"), (gemma3.QkNorm, gemma3.AttentionSoftcap, gemma3.LocalRopeTheta, gemma3.RopeScaling!.Type));
        Assert.Equal(40, Enumerable.Range(0, 48).Count(i => gemma3.WindowOf(i) == 1024)); // five local layers to one global
        Assert.False(MemoryPlanner.ExplicitAttention(gemma3)); // query_pre_attn_scalar = head_dim: fused attention
        var phi = ModelPresets.Get("phi-4-mini")!;
        Assert.Equal([ProjectionKind.Qkv, ProjectionKind.O, ProjectionKind.GateUp, ProjectionKind.Down], phi.Family.Projections);
        Assert.Equal((96, "longrope", 48, true), (phi.RotaryDim, phi.RopeScaling!.Type, phi.RopeScaling.LongFactor.Count, phi.TieWordEmbeddings));
    }

    [Fact]
    public void WeightsCountEachFamilysBiasesNormsAndFusedProjections()
    {
        static Dictionary<string, long> Bf16(string preset) =>
            MemoryPlanner.Weights(ModelPresets.Get(preset)!, new QuantizationOptions(Bits: 16)).ToDictionary(x => x.Name, x => x.Bytes);

        // Qwen2.5-7B: q, k, v with biases (3584 + 512 + 512), o without
        long h = 3584, kv = 512;
        Assert.Equal(28 * 2 * (2 * h * h + 2 * h * kv + h + 2 * kv), Bf16("qwen2.5-7b")["attention"]);
        // Qwen3-8B: two block norms and the q/k norms over head_dim (128) in each of 36 layers, the final norm
        Assert.Equal(2 * (36 * (2 * 4096 + 2 * 128) + 4096L), Bf16("qwen3-8b")["norms"]);
        // Gemma 2 9B: four norms a block; the head is the embeddings
        var gemma = Bf16("gemma-2-9b");
        Assert.Equal(2 * (42 * 4 * 3584 + 3584L), gemma["norms"]);
        Assert.Equal(0, gemma["lm_head"]);
        // Phi-4-mini: qkv_proj (5120 rows) and o_proj; gate_up_proj (16384 rows) and down_proj
        var phi = Bf16("phi-4-mini");
        Assert.Equal(32 * 2 * (3072L * 5120 + 3072L * 3072), phi["attention"]);
        Assert.Equal(32 * 2 * (3072L * 16384 + 8192L * 3072), phi["mlp"]);
        // 4-bit: the largest projection of a fused family is its gate_up_proj, the CUDA plan's dequantization transient
        var nf4 = MemoryPlanner.Training(ModelPresets.Get("phi-4-mini")!, QuantizationOptions.Nf4, new TrainingMemoryOptions(), "phi");
        Assert.Equal(3072L * 16384 * 2, nf4.Components.Single(x => x.Name == "dequant_transient").Bytes);
    }

    [Fact]
    public void AdaptersOnAFusedFamilyGoOnItsFusedProjection()
    {
        var phi = ModelPresets.Get("phi-4-mini")!;
        // q, k, v (the default) name Phi's one qkv_proj: 32 layers · r · (3072 in + 5120 out)
        Assert.Equal([ProjectionKind.Qkv], MemoryPlanner.AdapterTargets(phi, new TrainingMemoryOptions()));
        Assert.Equal(32L * 8 * (3072 + 5120), MemoryPlanner.AdapterParameters(phi, new TrainingMemoryOptions(Rank: 8)));
        var all = new TrainingMemoryOptions(Targets: [ProjectionKind.Up, ProjectionKind.Down]);
        Assert.Equal([ProjectionKind.GateUp, ProjectionKind.Down], MemoryPlanner.AdapterTargets(phi, all));
        // a family with separate projections keeps them as named
        Assert.Equal([ProjectionKind.Q, ProjectionKind.K, ProjectionKind.V], MemoryPlanner.AdapterTargets(ModelPresets.Get("qwen3-8b")!, new TrainingMemoryOptions()));
    }

    [Fact]
    public void ActivationsCountEachFamilysNormsActivationAndWrittenOutAttention()
    {
        var t = new TrainingMemoryOptions(BatchSize: 1, SeqLen: 512, Rank: 8, LoraDropout: 0);
        long PerToken(ModelConfig c, int seq = 512) => MemoryPlanner.LayerActivationBytesPerToken(c, t with { SeqLen = seq });
        ModelConfig FromJson(string preset, Action<System.Text.Json.Nodes.JsonObject> edit)
        {
            var json = ModelPresets.ConfigJson(preset)!;
            edit(json);
            return ModelConfig.FromJson((System.Text.Json.Nodes.JsonObject)System.Text.Json.Nodes.JsonNode.Parse(json.ToJsonString())!, preset);
        }

        // Qwen3's q/k norms keep their fp32 input over every query and key head: 4 · (4096 + 1024) per token
        var qwen3 = ModelPresets.Get("qwen3-8b")!;
        Assert.Equal(4L * (4096 + 1024), PerToken(qwen3) - PerToken(qwen3 with { ModelType = "llama", QkNorm = false }));
        // Gemma 2's written-out, soft-capped attention keeps 8 bytes per head per key: fp32 softmax, bf16 copy, tanh
        var gemma2 = ModelPresets.Get("gemma-2-9b")!;
        Assert.Equal(16L * 512 * 8, PerToken(gemma2, 1024) - PerToken(gemma2, 512));
        // without the cap and with query_pre_attn_scalar = head_dim (256) it runs fused: nothing grows with the sequence
        var uncapped = FromJson("gemma-2-9b", o => o["attn_logit_softcapping"] = null);
        Assert.Equal(PerToken(uncapped, 512), PerToken(uncapped, 1024));
        // a query scale of its own (Gemma 2 27B's 144) is written out too, without the tanh: 6 bytes per head per key
        var scaled = FromJson("gemma-2-9b", o => { o["attn_logit_softcapping"] = null; o["query_pre_attn_scalar"] = 144; });
        Assert.Equal(16L * 512 * 6, PerToken(scaled, 1024) - PerToken(scaled, 512));
        var fused = FromJson("gemma-3-12b", _ => { });
        Assert.Equal(PerToken(fused, 512), PerToken(fused, 1024)); // fused attention: nothing grows with the sequence
        // the head of a soft-capped model is never chunked: every target row's logits at once
        var head = MemoryPlanner.Training(gemma2, QuantizationOptions.Nf4, new TrainingMemoryOptions(BatchSize: 2, SeqLen: 1024), "g")
            .Components.Single(x => x.Name == "head_activations").Bytes;
        Assert.Equal(2048L * (8 * 3584 + 22 * 256000), head);
    }

    [Theory]
    [MemberData(nameof(PresetNames))]
    public void MemoryCommandPlansEachPreset(string name)
    {
        var r = CliProcess.RunSeparately(TimeSpan.FromMinutes(1), "memory", "--model", name, "--bits", "4", "--json");
        Assert.True(r.ExitCode == 0, r.Output);
        var json = System.Text.Json.Nodes.JsonNode.Parse(r.Stdout)!;
        var plan = MemoryPlanner.Inference(ModelPresets.Get(name)!, new QuantizationOptions(Bits: 4), name);
        Assert.Equal(plan.WeightsBytes, json["weights_bytes"]!.GetValue<long>());
        Assert.Equal(plan.TotalBytes, json["total_bytes"]!.GetValue<long>());
    }

    public static IEnumerable<object[]> PresetNames => ModelPresets.Names.Select(n => new object[] { n });

    [Fact]
    public void MemoryCommandNamesThePresetsForAnUnknownModel()
    {
        var r = InProcessCli.Run("memory", "--model", "qwen-9000");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("qwen-9000", r.Stderr);
        Assert.Contains("gemma-2-9b", r.Stderr);
    }
}
