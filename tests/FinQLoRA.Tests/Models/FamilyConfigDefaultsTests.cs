using System.Text.Json.Nodes;
using FinQLoRA.Models;

namespace FinQLoRA.Tests.Models;

/// <summary>Where a config.json leaves a family key out, the family takes the default of transformers' config class
/// (Gemma2Config, Gemma3TextConfig, Qwen3Config, MistralConfig, Phi3Config); a key written as null turns the switch off.</summary>
public class FamilyConfigDefaultsTests
{
    private static ModelConfig Read(string architecture, string modelType, string extra = "") =>
        ModelConfig.FromJson((JsonObject)JsonNode.Parse($$"""
            {"architectures": ["{{architecture}}"], "model_type": "{{modelType}}", "hidden_size": 64, "intermediate_size": 96,
             "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 512{{extra}}}
            """)!, modelType);

    [Fact]
    public void Gemma2TakesItsConfigClassDefaults()
    {
        var c = Read("Gemma2ForCausalLM", "gemma2");
        Assert.Equal((224.0, 50.0, 30.0, 4096, 256), (c.QueryPreAttnScalar, c.AttentionSoftcap, c.FinalSoftcap, c.SlidingWindow, c.HeadDim));
        Assert.Equal([true, false], c.SlidingLayers);
        var off = Read("Gemma2ForCausalLM", "gemma2", """, "attn_logit_softcapping": null, "final_logit_softcapping": null, "sliding_window": null""");
        Assert.Equal((null, null, null), (off.AttentionSoftcap, off.FinalSoftcap, off.SlidingWindow));
        Assert.Empty(off.SlidingLayers);
    }

    [Fact]
    public void Gemma3Qwen3MistralAndPhi3TakeTheirs()
    {
        var gemma3 = Read("Gemma3ForCausalLM", "gemma3_text");
        Assert.Equal((256.0, (double?)null, 4096, 256, 10000.0), (gemma3.QueryPreAttnScalar, gemma3.AttentionSoftcap, gemma3.SlidingWindow, gemma3.HeadDim, gemma3.LocalRopeTheta));
        Assert.Equal(128, Read("Qwen3ForCausalLM", "qwen3").HeadDim);
        Assert.Equal(16, Read("Qwen3ForCausalLM", "qwen3", """, "head_dim": 16""").HeadDim);
        Assert.Equal(4096, Read("MistralForCausalLM", "mistral").SlidingWindow);
        Assert.Null(Read("MistralForCausalLM", "mistral", """, "sliding_window": null""").SlidingWindow);
        var phi = Read("Phi3ForCausalLM", "phi3", """, "max_position_embeddings": 131072, "rope_scaling": {"type": "longrope", "short_factor": [1,1,1,1,1,1,1,1], "long_factor": [2,2,2,2,2,2,2,2]}""");
        Assert.Equal((4096, 32.0), (phi.RopeScaling!.OriginalMaxPositionEmbeddings, phi.RopeScaling.Factor));
    }
}
