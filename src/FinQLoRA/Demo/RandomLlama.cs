using FinQLoRA.Models;
using FinQLoRA.Models.Checkpoints;
using System.Text.Json;
using static TorchSharp.torch;

namespace FinQLoRA.Demo;

/// <summary>Writes a randomly initialised Llama (fixed seed, N(0, 0.02) weights, unit norms) as a Hugging Face
/// folder, for the demo and for benchmarks that need a model of a given size.</summary>
public static class RandomLlama
{
    public static void WriteHfFolder(LlamaConfig config, string folder, long seed, ScalarType dtype = ScalarType.Float32)
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
            Tensor Normal(long rows, long cols) => (randn([rows, cols], generator: gen) * 0.02).to(dtype);
            long h = config.HiddenSize, f = config.IntermediateSize;
            Add("model.embed_tokens.weight", () => Normal(config.VocabSize, h));
            for (int i = 0; i < config.NumLayers; i++)
            {
                string p = $"model.layers.{i}.";
                Add(p + "input_layernorm.weight", () => ones(h, dtype));
                Add(p + "post_attention_layernorm.weight", () => ones(h, dtype));
                Add(p + "self_attn.q_proj.weight", () => Normal(config.QDim, h));
                Add(p + "self_attn.k_proj.weight", () => Normal(config.KvDim, h));
                Add(p + "self_attn.v_proj.weight", () => Normal(config.KvDim, h));
                Add(p + "self_attn.o_proj.weight", () => Normal(h, config.QDim));
                Add(p + "mlp.gate_proj.weight", () => Normal(f, h));
                Add(p + "mlp.up_proj.weight", () => Normal(f, h));
                Add(p + "mlp.down_proj.weight", () => Normal(h, f));
            }
            Add("model.norm.weight", () => ones(h, dtype));
            if (!config.TieWordEmbeddings) Add("lm_head.weight", () => Normal(config.VocabSize, h));
            writer.Commit();
        }
        FinQLoRA.IO.AtomicFile.WriteAllText(Path.Combine(folder, "config.json"),
            (config with { TorchDtype = dtype == ScalarType.BFloat16 ? "bfloat16" : "float32" }).ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }
}
