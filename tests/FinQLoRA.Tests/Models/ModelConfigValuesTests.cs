using System.Text.Json.Nodes;
using FinQLoRA.Models;

namespace FinQLoRA.Tests.Models;

/// <summary>config.json values of the wrong type or impossible size are named with their key (they used to reach
/// libtorch as garbage, or fail with a runtime exception).</summary>
public sealed class ModelConfigValuesTests
{
    private static JsonObject Config() => new()
    {
        ["model_type"] = "llama", ["hidden_size"] = 64, ["intermediate_size"] = 128, ["num_hidden_layers"] = 2,
        ["num_attention_heads"] = 4, ["num_key_value_heads"] = 2, ["vocab_size"] = 32,
    };

    [Theory]
    [InlineData("rms_norm_eps", "\"tiny\"")]
    [InlineData("rms_norm_eps", "0")]
    [InlineData("rope_theta", "0")]
    [InlineData("rope_theta", "-10000")]
    [InlineData("max_position_embeddings", "\"long\"")]
    [InlineData("head_dim", "-2")]
    [InlineData("tie_word_embeddings", "\"yes\"")]
    public void AWrongValueNamesItsKey(string key, string json)
    {
        var o = Config();
        o[key] = JsonNode.Parse(json);
        var e = Assert.Throws<UserInputException>(() => ModelConfig.FromJson(o, "config.json"));
        Assert.Contains($"'{key}'", e.Message);
    }

    [Fact]
    public void HeadsThatDoNotDivideTheHiddenSizeAreNamed()
    {
        var o = Config();
        o["num_attention_heads"] = 3;
        o["num_key_value_heads"] = 3;
        Assert.Contains("not a multiple of num_attention_heads", Assert.Throws<UserInputException>(() => ModelConfig.FromJson(o, "config.json")).Message);
    }

    [Fact]
    public void DefaultsStillApply()
    {
        var c = ModelConfig.FromJson(Config(), "config.json");
        Assert.Equal(1e-6, c.RmsNormEps);
        Assert.Equal(10000.0, c.RopeTheta);
        Assert.Equal(16, c.HeadDim);
    }
}
