using FinQLoRA.Loading;
using System.Text;
using FinQLoRA.Models;
using FinQLoRA.Formats.Checkpoints;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Models;

/// <summary>Truncated or inconsistent checkpoints fail with one line naming the file and tensor.</summary>
public sealed class CheckpointBadInputTests
{
    /// <summary>A copy of the seeded model (stories260K's shapes) to damage.</summary>
    private static string CopyModel(TempFolder dir)
    {
        string folder = Path.Combine(dir.Path, "model");
        Directory.CreateDirectory(folder);
        foreach (string f in Directory.GetFiles(SeededLlama.Folder))
            File.Copy(f, Path.Combine(folder, Path.GetFileName(f)));
        return folder;
    }

    [Fact]
    public void TruncatedSafetensorsNamesFileAndTensor()
    {
        using var dir = new TempFolder();
        string folder = CopyModel(dir);
        string file = Path.Combine(folder, "model.safetensors");
        byte[] bytes = File.ReadAllBytes(file);
        File.WriteAllBytes(file, bytes[..(bytes.Length - 1000)]);
        var e = Assert.Throws<UserInputException>(() => ModelLoading.LoadModel(folder, new ModelLoadOptions()));
        Assert.Contains("model.safetensors", e.Message);
        Assert.Contains("tensor '", e.Message);
        Assert.Contains("truncated", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void HeaderLengthPastTheEndIsRejected()
    {
        using var dir = new TempFolder();
        string file = Path.Combine(dir.Path, "x.safetensors");
        File.WriteAllBytes(file, [.. BitConverter.GetBytes(1_000_000L), .. Encoding.UTF8.GetBytes("{}")]);
        var e = Assert.Throws<UserInputException>(() => new SafetensorsFile(file));
        Assert.Contains("header length 1000000 runs past the end", e.Message);
    }

    [Fact]
    public void ShapeThatDisagreesWithItsBytesIsRejected()
    {
        using var dir = new TempFolder();
        string file = Path.Combine(dir.Path, "x.safetensors");
        string header = "{\"w\":{\"dtype\":\"F32\",\"shape\":[4,4],\"data_offsets\":[0,32]}}";
        File.WriteAllBytes(file, [.. BitConverter.GetBytes((long)header.Length), .. Encoding.UTF8.GetBytes(header), .. new byte[32]]);
        var e = Assert.Throws<UserInputException>(() => new SafetensorsFile(file));
        Assert.Contains("tensor 'w' occupies 32 bytes", e.Message);
    }

    [Fact]
    public void SafetensorsRoundTripKeepsValuesAndDtypes()
    {
        using var dir = new TempFolder();
        string file = Path.Combine(dir.Path, "x.safetensors");
        using var a = randn(3, 5);
        using var b = randn(7).to(ScalarType.BFloat16);
        using var c = tensor(new byte[] { 1, 2, 250 });
        SafetensorsFile.Write(file, new Dictionary<string, Tensor> { ["a"] = a, ["b"] = b, ["c"] = c });
        using var f = new SafetensorsFile(file);
        TensorAssert.Equal(a, f.Read("a"), "a");
        Assert.Equal(ScalarType.BFloat16, f.Read("b").dtype);
        TensorAssert.Equal(b, f.Read("b"), "b");
        Assert.Equal(new byte[] { 1, 2, 250 }, f.Read("c").data<byte>().ToArray());
    }

    [Fact]
    public void MissingShardIsNamed()
    {
        using var dir = new TempFolder();
        string folder = CopyModel(dir);
        File.Move(Path.Combine(folder, "model.safetensors"), Path.Combine(folder, "model-00001-of-00002.safetensors"));
        File.WriteAllText(Path.Combine(folder, "model.safetensors.index.json"),
            "{\"weight_map\":{\"model.embed_tokens.weight\":\"model-00001-of-00002.safetensors\",\"lm_head.weight\":\"model-00002-of-00002.safetensors\"}}");
        var e = Assert.Throws<UserInputException>(() => ModelLoading.LoadModel(folder, new ModelLoadOptions()));
        Assert.Contains("shard 'model-00002-of-00002.safetensors'", e.Message);
        Assert.Contains("lm_head.weight", e.Message);
    }

    [Fact]
    public void ShapeThatDoesNotMatchTheConfigIsNamed()
    {
        using var dir = new TempFolder();
        string folder = CopyModel(dir);
        string config = File.ReadAllText(Path.Combine(folder, "config.json")).Replace("\"intermediate_size\": 172", "\"intermediate_size\": 176");
        File.WriteAllText(Path.Combine(folder, "config.json"), config);
        var e = Assert.Throws<UserInputException>(() => ModelLoading.LoadModel(folder, new ModelLoadOptions()));
        Assert.Contains("model.layers.0.mlp.gate_proj.weight", e.Message);
        Assert.Contains("[172, 64]", e.Message);
    }

    [Fact]
    public void UnknownArchitectureIsAClearError()
    {
        using var dir = new TempFolder();
        File.WriteAllText(Path.Combine(dir.Path, "config.json"), "{\"architectures\":[\"MixtralForCausalLM\"],\"hidden_size\":64}");
        var e = Assert.Throws<UserInputException>(() => ModelConfig.Load(dir.Path));
        Assert.Contains("MixtralForCausalLM", e.Message);
        Assert.Contains("not supported", e.Message);
    }

    [Fact]
    public void MalformedConfigAndMissingKeysAreNamed()
    {
        using var dir = new TempFolder();
        File.WriteAllText(Path.Combine(dir.Path, "config.json"), "{\"architectures\":[\"LlamaForCausalLM\"],");
        Assert.Contains("not valid JSON", Assert.Throws<UserInputException>(() => ModelConfig.Load(dir.Path)).Message);
        File.WriteAllText(Path.Combine(dir.Path, "config.json"), "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64}");
        Assert.Contains("must be a positive integer", Assert.Throws<UserInputException>(() => ModelConfig.Load(dir.Path)).Message);
    }

    [Fact]
    public void MalformedTokenizerJsonIsNamed()
    {
        using var dir = new TempFolder();
        File.WriteAllText(Path.Combine(dir.Path, "tokenizer.json"), "{\"model\": {");
        var e = Assert.Throws<UserInputException>(() => FinQLoRA.Data.Tokenization.TokenizerLoader.FromHuggingFace(dir.Path));
        Assert.Contains("tokenizer.json", e.Message);
    }
}
