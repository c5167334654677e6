using System.Text.Json.Nodes;
using FinQLoRA.Formats.Gguf;
using FinQLoRA.Tests.Support;
using FinQLoRA.Formats.Tokenizers;

namespace FinQLoRA.Tests.Formats.Gguf;

public sealed class HfTokenizerConverterTests
{
    private static JsonNode Json(string path) => JsonNode.Parse(File.ReadAllText(path))!;

    [SharedFact]
    public void SentencePieceVocabularyFromHfMatchesTheOriginalGgufArrays()
    {
        var fromHf = HfTokenizerConverter.FromHuggingFace(Shared.File("models/stories260K-hf"));
        using var gguf = new GgufFile(Shared.File("models/stories260K/stories260K.gguf"));
        var original = GgufTokenizerData.FromGguf(gguf)!;
        Assert.Equal("llama", fromHf.Model);
        Assert.Equal(original.Tokens, fromHf.Tokens);
        Assert.Equal(original.Scores, fromHf.Scores);
        Assert.Equal(original.TokenTypes, fromHf.TokenTypes);
        Assert.Equal((1, 2, 0), (fromHf.BosId, fromHf.EosId, fromHf.UnkId));
        Assert.Null(fromHf.PadId);
        Assert.True(fromHf.AddBos);
        Assert.False(fromHf.AddEos);
    }

    [SharedFact]
    public void EmbeddedSentencePieceVocabularyRebuildsTheHfTokenizerJson()
    {
        // The merges of stories260K-hf were derived from the GGUF scores by transformers' algorithm; ours must agree
        // with every merge, in order, and with the rest of the file's structure.
        using var gguf = new GgufFile(Shared.File("models/stories260K/stories260K.gguf"));
        var data = GgufTokenizerData.FromGguf(gguf)!;
        using var dir = new TempFolder();
        HfTokenizerConverter.WriteHuggingFace(data, dir.Path, modelMaxLength: 512);
        string hf = Shared.File("models/stories260K-hf");
        var expected = Json(Path.Combine(hf, "tokenizer.json"));
        var actual = Json(dir.PathOf("tokenizer.json"));
        Assert.Equal(expected["model"]!["merges"]!.ToJsonString(), actual["model"]!["merges"]!.ToJsonString());
        Assert.True(JsonNode.DeepEquals(expected, actual), "tokenizer.json differs from stories260K-hf's");
        var expectedConfig = Json(Path.Combine(hf, "tokenizer_config.json"));
        Assert.True(JsonNode.DeepEquals(expectedConfig, Json(dir.PathOf("tokenizer_config.json"))), "tokenizer_config.json differs");
        Assert.True(JsonNode.DeepEquals(Json(Path.Combine(hf, "special_tokens_map.json")), Json(dir.PathOf("special_tokens_map.json"))));
    }

    [SharedFact]
    public void Llama3ByteLevelTokenizerRoundTripsThroughGgufData()
    {
        string folder = Shared.File("models/llama-3.1-tokenizer");
        var data = HfTokenizerConverter.FromHuggingFace(folder);
        Assert.Equal(("gpt2", "llama-bpe"), (data.Model, data.Pre));
        Assert.Equal(128256, data.Tokens.Count);
        Assert.Equal(280147, data.Merges!.Count);
        Assert.Equal((128000, 128009), (data.BosId, data.EosId));
        Assert.True(data.AddBos); // from the post-processor template: tokenizer_config.json has no add_bos_token
        Assert.Equal(GgufTokenType.Control, data.TypeOf(128009));
        Assert.Equal(GgufTokenType.Normal, data.TypeOf(791));
        Assert.NotNull(data.ChatTemplate);

        using var dir = new TempFolder();
        HfTokenizerConverter.WriteHuggingFace(data, dir.Path, modelMaxLength: 131072);
        Assert.True(JsonNode.DeepEquals(Json(Path.Combine(folder, "tokenizer.json")), Json(dir.PathOf("tokenizer.json"))),
            "rebuilt Llama 3 tokenizer.json differs from the original");
        var config = Json(dir.PathOf("tokenizer_config.json"));
        Assert.Equal("<|begin_of_text|>", config["bos_token"]!.GetValue<string>());
        Assert.Equal("<|eot_id|>", config["eos_token"]!.GetValue<string>());
        Assert.Equal(data.ChatTemplate, config["chat_template"]!.GetValue<string>());
    }
}
