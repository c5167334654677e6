using System.Text.Json;
using System.Text.Json.Nodes;
using FinQLoRA.Models;
using FinQLoRA.Formats.Checkpoints;
using FinQLoRA.Runtime;
using static TorchSharp.torch;

namespace FinQLoRA.Quantization;

/// <summary>
/// <c>finqlora quantize</c>: turns a Hugging Face folder of any supported family into the folder transformers saves
/// after <c>from_pretrained(..., load_in_4bit / load_in_8bit)</c> + <c>save_pretrained</c>: every block projection
/// weight (q/k/v/o/gate/up/down; Phi-3's fused qkv_proj and gate_up_proj) in bitsandbytes' serialization
/// (<see cref="BitsAndBytesFormat"/>); embeddings, norms, projection biases and lm_head kept unquantized in the model
/// dtype (bitsandbytes keeps a Linear4bit's bias as it is); config.json with <c>quantization_config</c>; tokenizer and
/// other files copied. Works tensor by tensor (read one, quantize, append to the output, free), so memory stays near
/// one weight.
/// </summary>
public static class CheckpointQuantizer
{
    /// <summary>True for the block projection weights that QLoRA / LLM.int8() quantize (biases are not weights).</summary>
    public static bool IsProjectionWeight(string name) => ModelLayout.TryParseWeightName(name, out _, out _);

    /// <param name="modelFolder">a Hugging Face model folder (config.json + safetensors), not already quantized</param>
    /// <param name="outFolder">a new or empty folder</param>
    /// <param name="dtype">dtype of the unquantized tensors and of the weights before quantizing (transformers casts
    /// to torch_dtype first); null keeps the checkpoint's torch_dtype</param>
    public static QuantizeSummary Run(string modelFolder, string outFolder, QuantizationOptions options, ScalarType? dtype = null, bool overwrite = false)
    {
        options.Validate();
        if (options.Bits == 16)
            throw UserInputException.About($"{new ConfigField("bits")} 16: a 16-bit model is not quantized; use {new ConfigField("bits")} 4 or 8");
        if (!Directory.Exists(modelFolder))
            throw UserInputException.About($"{new ConfigField("model")} {modelFolder}: not a folder; quantize reads a Hugging Face model folder (config.json + *.safetensors)");
        string outFull = Path.GetFullPath(outFolder).TrimEnd('/');
        FinQLoRA.IO.OutputPlacement.CheckFolder(outFolder, [modelFolder], overwrite);

        string configFile = Path.Combine(modelFolder, "config.json");
        var config = ModelConfig.Load(modelFolder);
        if (config.QuantizationConfig != null)
            throw new UserInputException($"{configFile}: the model is already quantized (quantization_config is set); quantize a 16/32-bit model");
        ScalarType target = dtype ?? TorchDtypeNames.Parse(config.TorchDtype, configFile + " torch_dtype");
        if (target == ScalarType.Float64)
            throw UserInputException.About($"{configFile}: torch_dtype float64 is not supported for quantized models; pass {new ConfigField("dtype")} bf16, f16 or f32");

        int quantized = 0, copied = 0;
        long inputBytes = 0, outputBytes = 0;
        // the folder is built under a temp name and renamed: a crash never leaves a half-written model behind
        FinQLoRA.IO.AtomicFile.WriteDirectory(outFull, temp =>
        {
            using var reader = new HfCheckpointReader(modelFolder);
            using (var writer = new SafetensorsStreamWriter(Path.Combine(temp, "model.safetensors"), new Dictionary<string, string> { ["format"] = "pt" }))
            {
                foreach (var entry in reader.Entries)
                {
                    using var scope = NewDisposeScope();
                    var stored = reader.Read(entry.Name);
                    inputBytes += stored.numel() * stored.element_size();
                    var cast = stored.is_floating_point() ? stored.to(target) : stored;
                    if (IsProjectionWeight(entry.Name))
                    {
                        // the quantizer reads the float values; quantizing `cast` records its dtype in the quant state
                        using var q = Quantizer.Quantize(cast, options);
                        var parts = BitsAndBytesFormat.ToStateDict(q, entry.Name[..^"weight".Length]);
                        try { foreach (var (name, t) in parts) writer.Add(name, t); }
                        finally { foreach (var t in parts.Values) t.Dispose(); }
                        quantized++;
                    }
                    else
                    {
                        writer.Add(entry.Name, cast);
                        copied++;
                    }
                }
                if (quantized == 0)
                    throw new UserInputException($"{reader.Source}: no block projection weights found ({ModelLayout.WeightNamePattern(ProjectionKind.Q)}, …); is this a checkpoint of a supported family?");
                outputBytes = writer.DataBytes;
                writer.Commit();
            }
            File.WriteAllText(Path.Combine(temp, "config.json"), QuantizedConfigJson(configFile, options, target));
            CopySideFiles(modelFolder, temp);
        });
        return new QuantizeSummary(outFull, quantized, copied, inputBytes, outputBytes, MemoryUsage.PeakRssBytes);
    }

    /// <summary>The source config.json with every key kept, torch_dtype set and quantization_config added.</summary>
    public static string QuantizedConfigJson(string configFile, QuantizationOptions options, ScalarType dtype)
    {
        var root = (JsonObject)JsonNode.Parse(File.ReadAllText(configFile))!;
        root["torch_dtype"] = TorchDtypeNames.Name(dtype);
        // transformers' QLoRA recipes compute in the model dtype; a float32 model computes in float32
        root["quantization_config"] = BitsAndBytesConfig.ToJson(options, dtype);
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    private static readonly string[] WeightSuffixes = [".safetensors", ".bin", ".pt", ".pth", ".gguf", ".index.json", ".msgpack", ".h5"];

    /// <summary>Tokenizer, generation config, licence, README…: every top-level file that is not weights or config.json.</summary>
    private static void CopySideFiles(string from, string to)
    {
        foreach (string file in Directory.EnumerateFiles(from))
        {
            string name = Path.GetFileName(file);
            if (name == "config.json" || WeightSuffixes.Any(s => name.EndsWith(s, StringComparison.OrdinalIgnoreCase))) continue;
            File.Copy(file, Path.Combine(to, name));
        }
    }
}
