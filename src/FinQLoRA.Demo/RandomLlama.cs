using FinQLoRA.Models;
using FinQLoRA.Formats.Checkpoints;
using System.Text.Json;
using static TorchSharp.torch;

namespace FinQLoRA.Demo;

/// <summary>Writes a randomly initialised model of any family (fixed seed, N(0, 0.02) weights, unit norms, no bias) as
/// a Hugging Face folder, for the demo and for benchmarks that need a model of a given size. With
/// <paramref name="quirks"/> every tensor is random (norms around their unit scale, biases non-zero) and the matrices
/// have the standard deviation given, so that checks against another implementation exercise every term.</summary>
public static class RandomLlama
{
    public static void WriteHfFolder(ModelConfig config, string folder, long seed, ScalarType dtype = ScalarType.Float32, double? quirks = null)
    {
        Directory.CreateDirectory(folder);
        var gen = new Generator((ulong)seed);
        // Streamed: each tensor is made, written and freed before the next, so a 1B model needs memory for one
        // tensor, not the whole model plus its fp32 intermediates.
        using (var writer = new SafetensorsStreamWriter(Path.Combine(folder, "model.safetensors"), new Dictionary<string, string> { ["format"] = "pt" }))
        {
            void Add(string name, Func<Tensor> make)
            {
                using var scope = NewDisposeScope();
                writer.Add(name, make());
            }
            // embeddings, projections and lm_head N(0, 0.02); norms 1 (the layout's order, so the values for a
            // seed stay what they were when this wrote the tensors one by one)
            // a unit norm scale is w = 1, or w = 0 where the family scales by 1 + w (Gemma)
            double unit = 1 - config.NormOffset;
            foreach (var t in ModelLayout.Tensors(config))
                Add(t.HfName, () => (t.Role, quirks) switch
                {
                    (TensorRole.Norm or TensorRole.FinalNorm, null) => full(t.Shape, unit, dtype),
                    (TensorRole.Norm or TensorRole.FinalNorm, _) => (randn(t.Shape, generator: gen) * 0.1 + unit).to(dtype),
                    (_, double std) => (randn(t.Shape, generator: gen) * std).to(dtype),
                    _ => (randn(t.Shape, generator: gen) * 0.02).to(dtype),
                });
            writer.Commit();
        }
        FinQLoRA.IO.AtomicFile.WriteAllText(Path.Combine(folder, "config.json"),
            (config with { TorchDtype = TorchDtypeNames.Name(dtype) }).ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }
}
