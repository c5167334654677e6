using System.Text.Json;
using FinQLoRA.IO;
using FinQLoRA.Models;
using FinQLoRA.Formats.Checkpoints;
using static TorchSharp.torch;

namespace FinQLoRA.Adapters;

/// <summary>
/// Writes a model with its active adapter merged in as a Hugging Face folder that transformers, vLLM or llama.cpp's
/// converter can load: config.json, model.safetensors and the base folder's tokenizer files. The folder is built under a
/// temp name and renamed into place.
/// </summary>
public static class MergedModelWriter
{
    /// <summary>Files copied from the base model folder when present.</summary>
    public static readonly IReadOnlyList<string> TokenizerFiles =
        ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "generation_config.json"];

    /// <summary>Writes <paramref name="outDir"/> and returns the size of model.safetensors in bytes.</summary>
    public static long WriteHfFolder(DecoderModel model, ModelConfig baseConfig, string baseFolder, string outDir, ScalarType dtype)
    {
        if (!Directory.Exists(baseFolder))
            throw new UserInputException($"{baseFolder}: base model folder not found; the merged folder copies its tokenizer files from there");
        string dtypeName = dtype is ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16 ? TorchDtypeNames.Name(dtype)
            : throw new UserInputException($"merged model dtype {dtype} is not supported; use float32, bfloat16 or float16");
        long bytes = 0;
        AtomicFile.WriteDirectory(outDir, temp =>
        {
            foreach (string file in TokenizerFiles)
            {
                string source = Path.Combine(baseFolder, file);
                if (File.Exists(source)) File.Copy(source, Path.Combine(temp, file));
            }
            // A merged model is plain 16/32-bit, so any quantization_config of the base no longer applies.
            var config = (baseConfig with { TorchDtype = dtypeName, QuantizationConfig = null }).ToJson();
            File.WriteAllText(Path.Combine(temp, "config.json"), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

            var tensors = new List<KeyValuePair<string, Tensor>>();
            try
            {
                using (no_grad()) tensors.AddRange(MergedModelTensors.Enumerate(model, dtype));
                string weights = Path.Combine(temp, "model.safetensors");
                SafetensorsFile.Write(weights, tensors, new Dictionary<string, string> { ["format"] = "pt" });
                bytes = new FileInfo(weights).Length;
            }
            finally
            {
                foreach (var (_, t) in tensors) t.Dispose();
            }
        });
        return bytes;
    }
}
