using FinQLoRA.Models;
using FinQLoRA.Formats.Checkpoints;
using System.Text.Json;
using static TorchSharp.torch;

namespace FinQLoRA.Demo;

/// <summary>Writes a randomly initialised Llama (fixed seed, N(0, 0.02) weights, unit norms) as a Hugging Face
/// folder, for the demo and for benchmarks that need a model of a given size.</summary>
public static class RandomLlama
{
    public static void WriteHfFolder(ModelConfig config, string folder, long seed, ScalarType dtype = ScalarType.Float32)
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
            foreach (var t in ModelLayout.Tensors(config))
                Add(t.HfName, () => t.Shape.Length == 1 ? ones(t.Shape, dtype) : (randn(t.Shape, generator: gen) * 0.02).to(dtype));
            writer.Commit();
        }
        FinQLoRA.IO.AtomicFile.WriteAllText(Path.Combine(folder, "config.json"),
            (config with { TorchDtype = TorchDtypeNames.Name(dtype) }).ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }
}
