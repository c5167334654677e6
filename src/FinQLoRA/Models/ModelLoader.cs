using FinQLoRA.Models.Checkpoints;
using FinQLoRA.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>
/// Builds a <see cref="LlamaModel"/> from a checkpoint, tensor by tensor: each weight is read, converted (or
/// quantized) and the stored copy freed before the next is read, so peak memory stays near the final model size
/// and a 70B checkpoint never sits in memory twice.
/// </summary>
public static class ModelLoader
{
    public static LlamaModel Load(string path, ModelLoadOptions? options = null)
    {
        var (config, reader) = CheckpointOpener.Open(path);
        using (reader) return Load(config, reader, options ?? new ModelLoadOptions());
    }

    public static LlamaModel Load(LlamaConfig config, ICheckpointReader reader, ModelLoadOptions options)
    {
        using var noGrad = no_grad();
        var (first, count) = options.LayerRange ?? (0, config.NumLayers);
        var linear = options.LinearFactory ?? ((_, w) => new DenseLinear(w.to(options.DType, options.Device)));
        // [pre-quantized checkpoints] config.json's quantization_config says bitsandbytes: projections stored 4/8-bit
        // are rebuilt from their stored entries as they are (LinearFactory then applies only to dense-stored ones).
        var prequantized = PrequantizedProjections.For(config, reader, options);

        Tensor Dense(string name, long[] shape, ScalarType dtype)
        {
            using var stored = Read(reader, name, shape);
            return stored.to(dtype, options.Device).detach();
        }

        nn.Module<Tensor, Tensor> Proj(string name, long outDim, long inDim)
        {
            if (prequantized?.TryLoad(name, [outDim, inDim]) is { } stored4or8Bit) return stored4or8Bit;
            using var stored = Read(reader, name, [outDim, inDim]);
            return linear(name, stored);
        }

        long h = config.HiddenSize, ffn = config.IntermediateSize;
        var embed = options.LoadEmbeddings || config.TieWordEmbeddings && options.LoadHead
            ? Dense("model.embed_tokens.weight", [config.VocabSize, h], options.DType)
            : empty([0, h], options.DType, options.Device);

        var layers = new List<LlamaDecoderLayer>();
        for (int i = first; i < first + count; i++)
        {
            string p = $"model.layers.{i}.";
            var attention = new LlamaAttention(config, i,
                Proj(p + "self_attn.q_proj.weight", config.QDim, h),
                Proj(p + "self_attn.k_proj.weight", config.KvDim, h),
                Proj(p + "self_attn.v_proj.weight", config.KvDim, h),
                Proj(p + "self_attn.o_proj.weight", h, config.QDim));
            var mlp = new LlamaMlp(
                Proj(p + "mlp.gate_proj.weight", ffn, h),
                Proj(p + "mlp.up_proj.weight", ffn, h),
                Proj(p + "mlp.down_proj.weight", h, ffn));
            layers.Add(new LlamaDecoderLayer(
                new RmsNorm(Dense(p + "input_layernorm.weight", [h], options.DType), config.RmsNormEps),
                attention,
                new RmsNorm(Dense(p + "post_attention_layernorm.weight", [h], options.DType), config.RmsNormEps),
                mlp));
        }

        var norm = new RmsNorm(options.LoadHead ? Dense("model.norm.weight", [h], options.DType) : ones(h, options.DType, options.Device), config.RmsNormEps);
        nn.Module<Tensor, Tensor>? head = null;
        if (options.LoadHead && !config.TieWordEmbeddings)
        {
            // lm_head stays 16-bit as in QLoRA: it is never handed to the quantizing factory.
            head = new DenseLinear(Dense("lm_head.weight", [config.VocabSize, h], options.DType));
        }
        var model = new LlamaModel(config, options.DType, embed, layers, norm, head);
        model.eval(); // inference mode by default (adapter dropout off), as from_pretrained; trainers call train()
        return model;
    }

    private static Tensor Read(ICheckpointReader reader, string name, long[] expected)
    {
        if (!reader.Contains(name))
            throw new UserInputException($"{reader.Source}: tensor '{name}' is missing; the checkpoint does not match its config (or is incomplete)");
        var t = reader.Read(name);
        if (!FloatTensors.IsFloat(t.dtype))
        {
            var dtype = t.dtype;
            t.Dispose();
            FloatTensors.Require(reader.Source, name, dtype, "a Llama weight",
                "the checkpoint is damaged, or it is quantized and config.json lacks the quantization_config that says so");
        }
        if (!t.shape.SequenceEqual(expected))
        {
            string found = string.Join(", ", t.shape);
            t.Dispose();
            throw new UserInputException($"{reader.Source}: tensor '{name}' has shape [{found}] but the config implies [{string.Join(", ", expected)}]; config.json and the weights disagree");
        }
        return t;
    }
}
