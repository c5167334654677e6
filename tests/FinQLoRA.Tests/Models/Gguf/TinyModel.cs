using FinQLoRA.Models;
using FinQLoRA.Models.Checkpoints;
using FinQLoRA.Models.Gguf;
using TorchSharp;

namespace FinQLoRA.Tests.Models.Gguf;

/// <summary>Writes a small random HF Llama folder (config.json, model.safetensors, tokenizer files copied from a
/// shared tokenizer folder) for tests that need shapes stories260K does not have.</summary>
internal static class TinyModel
{
    public static void Write(string folder, LlamaConfig config, string tokenizerFolder, torch.ScalarType dtype, int seed)
    {
        Directory.CreateDirectory(folder);
        foreach (var f in new[] { "tokenizer.json", "tokenizer_config.json" })
            File.Copy(Path.Combine(tokenizerFolder, f), Path.Combine(folder, f));
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJson().ToJsonString());
        using var gen = new torch.Generator((ulong)seed);
        using var scope = torch.NewDisposeScope();
        var tensors = ModelConverter.ExpectedTensors(config).ToDictionary(n => n, n =>
        {
            if (n.EndsWith("norm.weight", StringComparison.Ordinal))
                return (1 + 0.1f * torch.randn([config.HiddenSize], generator: gen)).to(dtype);
            long[] shape = n switch
            {
                _ when n.Contains("embed_tokens") || n.StartsWith("lm_head") => [config.VocabSize, config.HiddenSize],
                _ when n.Contains("q_proj") => [config.QDim, config.HiddenSize],
                _ when n.Contains("k_proj") || n.Contains("v_proj") => [config.KvDim, config.HiddenSize],
                _ when n.Contains("o_proj") => [config.HiddenSize, config.QDim],
                _ when n.Contains("down_proj") => [config.HiddenSize, config.IntermediateSize],
                _ => [config.IntermediateSize, config.HiddenSize],
            };
            return (0.1f * torch.randn(shape, generator: gen)).to(dtype);
        });
        SafetensorsFile.Write(Path.Combine(folder, "model.safetensors"), tensors);
    }
}
