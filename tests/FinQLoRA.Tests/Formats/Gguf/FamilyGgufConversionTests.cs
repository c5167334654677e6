using System.Text.Json.Nodes;
using FinQLoRA.Formats.Checkpoints;
using FinQLoRA.Formats.Gguf;
using FinQLoRA.Models;
using FinQLoRA.Tests.Support;
using TorchSharp;

namespace FinQLoRA.Tests.Formats.Gguf;

/// <summary>
/// <c>convert --to gguf</c> and back for every family: the keys llama.cpp's converter writes for the architecture, the
/// same tensors and config after HF → GGUF → HF, and refusals, by the config key, of what llama.cpp would not run as
/// the config says. (That llama.cpp runs the files as we do is FamilyLlamaCppTests' part.)
/// </summary>
public sealed class FamilyGgufConversionTests
{
    public static IEnumerable<object[]> Names => SeededFamilies.Names;

    [Theory]
    [MemberData(nameof(Names))]
    public void HfToGgufToHfGivesTheSameTensorsAndConfig(string family)
    {
        using var dir = new TempFolder();
        string hf = GgufFamilyModels.Write(dir.PathOf("hf"), family), gguf = dir.PathOf("m.gguf"), back = dir.PathOf("back");
        ModelConverter.HfToGguf(hf, gguf, GgmlType.F32);
        ModelConverter.GgufToHf(gguf, back);

        var config = ModelConfig.Load(hf);
        var again = ModelConfig.Load(back);
        Assert.True(JsonNode.DeepEquals(config.ToJson(), again.ToJson()),
            $"config changed:\n{config.ToJson().ToJsonString()}\n{again.ToJson().ToJsonString()}");
        using var a = new HfCheckpointReader(hf);
        using var b = new HfCheckpointReader(back);
        Assert.Equal(a.Entries.Select(e => e.Name).Order(), b.Entries.Select(e => e.Name).Order());
        var norms = ModelLayout.Tensors(config).Where(ModelConverter.IsNorm).Select(t => t.HfName).ToHashSet();
        foreach (var e in a.Entries)
        {
            using var x = a.Read(e.Name);
            using var y = b.Read(e.Name);
            if (config.Family.GgufNormOffset != 0 && norms.Contains(e.Name))
                // Gemma's GGUF holds 1 + w in f32: w comes back within half an f32 step of 1 + w (2⁻²⁴ ≈ 6e-8)
                TensorAssert.MaxDiffAtMost(x, y, Math.Pow(2, -24), $"{family} {e.Name}");
            else
                TensorAssert.BitIdentical(x, y, $"{family} {e.Name} changed in the round trip");
        }
    }

    [Fact]
    public void EachArchitectureGetsTheKeysLlamaCppReads()
    {
        using var dir = new TempFolder();
        GgufFile Convert(string family)
        {
            string gguf = dir.PathOf(family + ".gguf");
            ModelConverter.HfToGguf(GgufFamilyModels.Write(dir.PathOf(family), family), gguf, GgmlType.F32);
            return new GgufFile(gguf);
        }
        using (var f = Convert("mistral"))
        {
            Assert.Equal("llama", f.GetString("general.architecture"));
            Assert.Equal(SeededFamilies.Window, f.GetInteger("llama.attention.sliding_window"));
            Assert.True(f.Contains("blk.0.attn_q.weight") && f.Contains(ModelLayout.GgufHeadName));
        }
        using (var f = Convert("llama3.2"))
        {
            Assert.Equal(8, f.Tensor(GgufModelConfig.RopeFreqsTensor).ElementCount);
            Assert.True(f.Contains("blk.3.attn_q.bias") && f.Contains("blk.3.attn_output.bias"));
            Assert.False(f.Contains(ModelLayout.GgufHeadName)); // tied
        }
        using (var f = Convert("qwen2"))
        {
            Assert.Equal("qwen2", f.GetString("general.architecture"));
            Assert.Equal("yarn", f.GetString("qwen2.rope.scaling.type"));
            Assert.Equal(4.0, f.GetFloat("qwen2.rope.scaling.factor"));
            Assert.Equal(32, f.GetInteger("qwen2.rope.scaling.original_context_length"));
            Assert.Equal(1e6, f.GetFloat("qwen2.rope.freq_base"));
            Assert.False(f.ContainsKey("qwen2.attention.sliding_window")); // use_sliding_window false
            Assert.True(f.Contains("blk.0.attn_k.bias") && !f.Contains("blk.0.attn_output.bias"));
        }
        using (var f = Convert("qwen3"))
        {
            Assert.Equal(24, f.GetInteger("qwen3.attention.key_length"));
            Assert.True(f.Contains("blk.1.attn_q_norm.weight") && f.Contains("blk.1.attn_k_norm.weight"));
        }
        using (var f = Convert("gemma2"))
        {
            Assert.Equal(1.0, f.GetFloat("gemma2.attn_logit_softcapping"));
            Assert.Equal(2.0, f.GetFloat("gemma2.final_logit_softcapping"));
            Assert.Equal(SeededFamilies.Window, f.GetInteger("gemma2.attention.sliding_window"));
            Assert.True(f.Contains("blk.0.post_attention_norm.weight") && f.Contains("blk.0.post_ffw_norm.weight"));
        }
        using (var f = Convert("gemma3"))
        {
            Assert.Equal("linear", f.GetString("gemma3.rope.scaling.type"));
            Assert.Equal(8.0, f.GetFloat("gemma3.rope.scaling.factor"));
            Assert.False(f.ContainsKey("gemma3.rope.freq_base_swa")); // 10000, llama.cpp's own local base
        }
        using (var f = Convert("phi3"))
        {
            Assert.Equal(12, f.GetInteger("phi3.rope.dimension_count")); // 0.75 of head dim 16
            Assert.Equal(64, f.GetInteger("phi3.rope.scaling.original_context_length"));
            Assert.Equal(Math.Sqrt(1 + Math.Log(4) / Math.Log(64)), f.GetFloat("phi3.rope.scaling.attn_factor")!.Value, 1e-6);
            Assert.Equal(6, f.Tensor(GgufModelConfig.RopeFactorsLongTensor).ElementCount);
            Assert.True(f.Contains("blk.0.attn_qkv.weight") && f.Contains("blk.0.ffn_up.weight") && !f.Contains("blk.0.ffn_gate.weight"));
            Assert.Equal([64L, 2 * 96L], f.Tensor("blk.0.ffn_up.weight").Ne);
        }
    }

    /// <summary>The stored 1 + w of Gemma's norms is what llama.cpp multiplies by.</summary>
    [Fact]
    public unsafe void GemmaNormsAreStoredAsOnePlusW()
    {
        using var dir = new TempFolder();
        string hf = GgufFamilyModels.Write(dir.PathOf("hf"), "gemma3"), gguf = dir.PathOf("m.gguf");
        ModelConverter.HfToGguf(hf, gguf, GgmlType.F32);
        using var reader = new HfCheckpointReader(hf);
        using var file = new GgufFile(gguf);
        foreach (var (hfName, ggufName) in new[] { ("model.layers.0.self_attn.q_norm.weight", "blk.0.attn_q_norm.weight"), (ModelLayout.FinalNormName, ModelLayout.GgufFinalNormName) })
        {
            using var w = reader.Read(hfName);
            var info = file.Tensor(ggufName);
            using var stored = torch.tensor(new ReadOnlySpan<float>(file.Data(info), (int)info.ElementCount).ToArray());
            TensorAssert.BitIdentical(w + 1f, stored, ggufName);
        }
    }

    [Theory]
    [InlineData("qwen3", "{\"attention_bias\":true}", "attention_bias")]
    [InlineData("gemma2", "{\"query_pre_attn_scalar\":32}", "query_pre_attn_scalar")]
    [InlineData("gemma2", "{\"final_logit_softcapping\":null}", "final_logit_softcapping")]
    [InlineData("qwen2", "{\"use_sliding_window\":true,\"sliding_window\":6,\"max_window_layers\":1}", "sliding_window 6")]
    [InlineData("mistral", "{\"layer_types\":[\"sliding_attention\",\"full_attention\",\"sliding_attention\",\"full_attention\"]}", "windowed layers (0,2")]
    [InlineData("gemma3", "{\"sliding_window_pattern\":3}", "windowed layers")]
    [InlineData("gemma3", "{\"attn_logit_softcapping\":5.0}", "soft-caps")]
    public void WhatLlamaCppWouldRunDifferentlyIsRefusedByName(string family, string extra, string expected)
    {
        using var dir = new TempFolder();
        string hf = GgufFamilyModels.Write(dir.PathOf("hf"), family, (JsonObject)JsonNode.Parse(extra)!);
        var e = Assert.Throws<UserInputException>(() => ModelConverter.HfToGguf(hf, dir.PathOf("m.gguf"), GgmlType.F32));
        Assert.Contains(expected, e.Message);
        Assert.False(File.Exists(dir.PathOf("m.gguf")));
    }

    /// <summary>A llama-architecture GGUF without a window key (as llama.cpp's converter writes Mistral) comes back as
    /// Llama: the same weights and the same model within the window.</summary>
    [Fact]
    public void AMistralWithoutItsWindowComesBackAsLlama()
    {
        using var dir = new TempFolder();
        string hf = GgufFamilyModels.Write(dir.PathOf("hf"), "mistral", new JsonObject { ["sliding_window"] = null }), gguf = dir.PathOf("m.gguf");
        ModelConverter.HfToGguf(hf, gguf, GgmlType.F32);
        ModelConverter.GgufToHf(gguf, dir.PathOf("back"));
        var back = ModelConfig.Load(dir.PathOf("back"));
        Assert.Equal(("llama", "LlamaForCausalLM"), (back.ModelType, back.Family.HfArchitecture));
        Assert.Null(back.SlidingWindow);
    }
}
