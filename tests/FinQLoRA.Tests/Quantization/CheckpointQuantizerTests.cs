using FinQLoRA.Loading;
using System.Text.Json.Nodes;
using FinQLoRA.Models;
using FinQLoRA.Formats.Checkpoints;
using FinQLoRA.Quantization;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Quantization;

/// <summary>
/// <c>finqlora quantize</c> output: the tensors, keys, dtypes and config bitsandbytes/transformers write, and that
/// loading it gives bit-for-bit the logits of quantizing the 32-bit checkpoint on the fly at load.
/// </summary>
public sealed class CheckpointQuantizerTests
{
    /// <summary>A seeded Llama with stories260K's shapes: the layout checks need only the shapes.</summary>
    private static string Model => SeededLlama.Folder;

    /// <summary>The real stories260K, for the check that the quantized model still writes a story.</summary>
    private static string Stories => Shared.File("models/stories260K-hf");

    // "<s> Once upon a time" and a few story tokens after it
    private static readonly long[] PromptIds = [1, 403, 407, 261, 378, 267, 322, 283, 404, 331, 260, 292];

    private static Tensor Logits(DecoderModel model)
    {
        using var ids = tensor(PromptIds).unsqueeze(0);
        return model.Forward(ids);
    }

    [Theory]
    [InlineData(4, FourBitType.Nf4, true)]
    [InlineData(4, FourBitType.Fp4, false)]
    [InlineData(8, FourBitType.Nf4, true)]
    public void ReloadedQuantizedFolderGivesTheLogitsOfQuantizingAtLoad(int bits, FourBitType kind, bool doubleQuant)
    {
        using var temp = new TempFolder();
        string outDir = Path.Combine(temp.Path, "q");
        var summary = CheckpointQuantizer.Run(Model, outDir, new QuantizationOptions(bits, kind, doubleQuant));
        Assert.Equal(35, summary.QuantizedProjections); // 5 layers × 7
        Assert.Equal(13, summary.CopiedTensors);        // embeddings, lm_head, final norm, 2 norms × 5 layers

        var fp32 = new ModelLoadOptions { DType = ScalarType.Float32 };
        using var onTheFly = ModelLoading.LoadModel(Model, fp32.WithBits(bits, kind, doubleQuant));
        using var stored = ModelLoading.LoadModel(outDir, fp32);
        Assert.All(stored.Layers.SelectMany(l => l.modules()).OfType<DenseLinear>(), _ => Assert.Fail("a projection was loaded dense"));
        Assert.Equal(35, stored.modules().OfType<QuantizedLinear>().Count());
        Assert.All(stored.modules().OfType<QuantizedLinear>(), q => Assert.Equal(bits == 8 ? QuantizedFormat.Int8 : (kind == FourBitType.Nf4 ? QuantizedFormat.Nf4 : QuantizedFormat.Fp4), q.Weight.Format));

        using var expected = Logits(onTheFly);
        using var actual = Logits(stored);
        Assert.Equal(TensorBits.F32(expected), TensorBits.F32(actual)); // bit for bit
        // and quantization did change the model (the comparison is not of two 32-bit models)
        using var dense = ModelLoading.LoadModel(Model, fp32);
        using var full = Logits(dense);
        Assert.NotEqual(TensorBits.F32(full), TensorBits.F32(actual));
    }

    [Fact]
    public void FourBitFolderHasBitsandbytesTensorsAndConfig()
    {
        using var temp = new TempFolder();
        string outDir = Path.Combine(temp.Path, "q4");
        CheckpointQuantizer.Run(Model, outDir, QuantizationOptions.Nf4);
        using var file = new SafetensorsFile(Path.Combine(outDir, "model.safetensors"));
        var e = file.Entries.ToDictionary(x => x.Name);

        // up_proj [172, 64]: 11,008 weights → 5,504 packed bytes, 172 blocks of 64, 1 nested block of 256
        string p = "model.layers.3.mlp.up_proj.";
        Assert.Equal(new[] { "weight", "weight.absmax", "weight.nested_absmax", "weight.nested_quant_map", "weight.quant_map", "weight.quant_state.bitsandbytes__nf4" },
            e.Keys.Where(k => k.StartsWith(p)).Select(k => k[p.Length..]).Order(StringComparer.Ordinal));
        AssertEntry(e[p + "weight"], ScalarType.Byte, 5504, 1);
        AssertEntry(e[p + "weight.absmax"], ScalarType.Byte, 172);
        AssertEntry(e[p + "weight.quant_map"], ScalarType.Float32, 16);
        AssertEntry(e[p + "weight.nested_absmax"], ScalarType.Float32, 1);
        AssertEntry(e[p + "weight.nested_quant_map"], ScalarType.Float32, 256);
        Assert.Equal(ScalarType.Byte, e[p + "weight.quant_state.bitsandbytes__nf4"].DType);
        using (var state = file.Read(p + "weight.quant_state.bitsandbytes__nf4"))
        {
            string json = System.Text.Encoding.UTF8.GetString(state.data<byte>().ToArray());
            Assert.StartsWith("{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [172, 64], \"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": ", json);
        }
        // k_proj [32, 64]: 2,048 weights → 1,024 bytes, 32 blocks
        AssertEntry(e["model.layers.0.self_attn.k_proj.weight"], ScalarType.Byte, 1024, 1);
        AssertEntry(e["model.layers.0.self_attn.k_proj.weight.absmax"], ScalarType.Byte, 32);
        // never quantized: embeddings, lm_head, norms stay in the model dtype (float32 here)
        AssertEntry(e["model.embed_tokens.weight"], ScalarType.Float32, 512, 64);
        AssertEntry(e["lm_head.weight"], ScalarType.Float32, 512, 64);
        AssertEntry(e["model.layers.0.input_layernorm.weight"], ScalarType.Float32, 64);
        Assert.Equal(35 * 6 + 13, e.Count);
        Assert.Equal("pt", file.Metadata["format"]);

        var config = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "config.json")))!;
        Assert.Equal(BitsAndBytesConfig.ToJson(QuantizationOptions.Nf4, ScalarType.Float32).ToJsonString(), config["quantization_config"]!.ToJsonString());
        Assert.Equal("float32", config["torch_dtype"]!.GetValue<string>());
        Assert.Equal(64, config["hidden_size"]!.GetValue<int>()); // the source's keys are kept
        Assert.Equal(File.ReadAllText(Path.Combine(Model, "tokenizer.json")), File.ReadAllText(Path.Combine(outDir, "tokenizer.json")));
        Assert.True(File.Exists(Path.Combine(outDir, "tokenizer_config.json")));
        Assert.True(File.Exists(Path.Combine(outDir, "generation_config.json")));
        Assert.Equal([FinQLoRA.IO.OutputMarker.FileName, "config.json", "generation_config.json", "model.safetensors", "PROVENANCE.md", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"],
            Directory.GetFiles(outDir).Select(Path.GetFileName).Order(StringComparer.OrdinalIgnoreCase));
    }

    [Fact]
    public void EightBitFolderHasInt8WeightScbAndWeightFormat()
    {
        using var temp = new TempFolder();
        string outDir = Path.Combine(temp.Path, "q8");
        CheckpointQuantizer.Run(Model, outDir, QuantizationOptions.Int8, ScalarType.BFloat16);
        using var file = new SafetensorsFile(Path.Combine(outDir, "model.safetensors"));
        var e = file.Entries.ToDictionary(x => x.Name);
        string p = "model.layers.2.mlp.down_proj.";
        Assert.Equal(new[] { "SCB", "weight", "weight_format" }, e.Keys.Where(k => k.StartsWith(p)).Select(k => k[p.Length..]).Order(StringComparer.Ordinal));
        AssertEntry(e[p + "weight"], ScalarType.Int8, 64, 172);
        AssertEntry(e[p + "SCB"], ScalarType.Float32, 64);
        AssertEntry(e[p + "weight_format"], ScalarType.Byte);
        // --dtype bf16: the unquantized tensors are written in bf16 and torch_dtype says so
        AssertEntry(e["model.embed_tokens.weight"], ScalarType.BFloat16, 512, 64);
        var config = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "config.json")))!;
        Assert.Equal("bfloat16", config["torch_dtype"]!.GetValue<string>());
        Assert.True(config["quantization_config"]!["load_in_8bit"]!.GetValue<bool>());
        Assert.Equal("bitsandbytes", config["quantization_config"]!["quant_method"]!.GetValue<string>());
    }

    [Fact]
    public void RefusesAQuantizedInputAFilledOutputAndOtherQuantMethods()
    {
        using var temp = new TempFolder();
        string q4 = Path.Combine(temp.Path, "q4");
        CheckpointQuantizer.Run(Model, q4, QuantizationOptions.Nf4);
        var again = Assert.Throws<UserInputException>(() => CheckpointQuantizer.Run(q4, Path.Combine(temp.Path, "q4b"), QuantizationOptions.Nf4));
        Assert.Contains("already quantized", again.Message);
        var filled = Assert.Throws<UserInputException>(() => CheckpointQuantizer.Run(Model, q4, QuantizationOptions.Int8));
        Assert.Contains("not empty", filled.Message);

        // a GPTQ config over the same tensors: named, not mis-read as dense weights
        var config = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(q4, "config.json")))!;
        config["quantization_config"]!["quant_method"] = "gptq";
        File.WriteAllText(Path.Combine(q4, "config.json"), config.ToJsonString());
        var gptq = Assert.Throws<UserInputException>(() => ModelLoading.LoadModel(q4, new ModelLoadOptions()));
        Assert.Contains("quant_method 'gptq'", gptq.Message);
    }

    [SharedFact]
    public void CliQuantizesAndTheResultGeneratesAndPlansTraining()
    {
        using var temp = new TempFolder();
        string outDir = Path.Combine(temp.Path, "q4");
        var (code, text) = CliProcess.Run(TimeSpan.FromMinutes(3), "quantize", "--model", Stories, "--bits", "4", "--quant", "fp4", "--double-quant", "false", "--out", outDir);
        Assert.True(code == 0, text);
        Assert.Contains("35 projections 4-bit (fp4)", text);
        var config = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "config.json")))!;
        Assert.Equal("fp4", config["quantization_config"]!["bnb_4bit_quant_type"]!.GetValue<string>());
        Assert.False(config["quantization_config"]!["bnb_4bit_use_double_quant"]!.GetValue<bool>());

        (code, text) = CliProcess.Run(TimeSpan.FromMinutes(3), "generate", "--model", outDir, "--prompt", "Once upon a time", "--max-new-tokens", "8", "--dtype", "f32");
        Assert.True(code == 0, text);
        Assert.Contains("there was", text);

        (code, text) = CliProcess.Run(TimeSpan.FromMinutes(3), "quantize", "--model", Stories, "--bits", "3", "--out", outDir);
        Assert.NotEqual(0, code);
        Assert.Contains("--bits 3", text);
    }

    private static void AssertEntry(TensorEntry entry, ScalarType dtype, params long[] shape)
    {
        Assert.Equal(dtype, entry.DType);
        Assert.Equal(shape, entry.Shape);
    }
}
