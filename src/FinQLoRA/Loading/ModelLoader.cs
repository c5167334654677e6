using FinQLoRA.Formats.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;
using FinQLoRA.Models;
using FinQLoRA.Models.Families;

namespace FinQLoRA.Loading;

/// <summary>
/// Builds a <see cref="DecoderModel"/> from a checkpoint, tensor by tensor: each weight is read, converted (or
/// quantized) and the stored copy freed before the next is read, so peak memory stays near the final model size
/// and a 70B checkpoint never sits in memory twice.
/// </summary>
public static class ModelLoader
{
    public static DecoderModel Load(ModelConfig config, ICheckpointReader reader, ModelLoadOptions options)
    {
        using var noGrad = no_grad();
        var (first, count) = options.LayerRange ?? (0, config.NumLayers);
        var linear = options.LinearFactory ?? ((_, w) => new DenseLinear(w.to(options.DType, options.Device)));
        // [pre-quantized checkpoints] projections stored 4/8-bit are rebuilt from their stored entries as they are
        // (LinearFactory then applies only to dense-stored ones); the loading layer supplies the factory.
        var stored = options.StoredProjections?.Invoke(config, reader);
        // A tensor kept in its stored dtype is a view of the file (no copy); one converted or quantized is read with a
        // plain copy, so its file pages are not left mapped into this process once it is converted.
        var storedTypes = reader.Entries.ToDictionary(e => e.Name, e => e.DType, StringComparer.Ordinal);
        bool KeptAsStored(string name, ScalarType dtype) =>
            options.MapWeights && storedTypes.TryGetValue(name, out var storedType) && storedType == dtype;

        Tensor Dense(string name, long[] shape, ScalarType dtype)
        {
            using var stored = Read(reader, name, shape, KeptAsStored(name, dtype));
            // every handle disposed but the one returned: a stray alias of a mapped tensor would keep the file mapped
            using var converted = stored.to(dtype, options.Device);
            return converted.detach();
        }

        nn.Module<Tensor, Tensor> Proj(int layer, ProjectionKind kind)
        {
            string name = ModelLayout.WeightName(layer, kind);
            var (inDim, outDim) = ModelLayout.Shape(config, kind);
            if (stored?.Invoke(name, [outDim, inDim]) is { } stored4or8Bit) return stored4or8Bit;
            using var dense = Read(reader, name, [outDim, inDim], options.LinearFactory is null && KeptAsStored(name, options.DType));
            return linear(name, dense);
        }

        // Dense projections of one input (q, k, v; gate, up) are stored as consecutive row blocks of one [ΣOut, In]
        // tensor, each DenseLinear holding its block as a view: FusedProjections then multiplies all of them at once in
        // place. Quantized or factory-made projections are built one by one.
        nn.Module<Tensor, Tensor>[] Group(int layer, params ProjectionKind[] kinds)
        {
            if (options.LinearFactory is not null || stored is not null) return kinds.Select(k => Proj(layer, k)).ToArray();
            var shapes = kinds.Select(k => ModelLayout.Shape(config, k)).ToArray();
            using var combined = empty([shapes.Sum(s => s.Out), shapes[0].In], options.DType, options.Device);
            var modules = new nn.Module<Tensor, Tensor>[kinds.Length];
            long offset = 0;
            for (int k = 0; k < kinds.Length; k++)
            {
                var (inDim, outDim) = shapes[k];
                using (var dense = Read(reader, ModelLayout.WeightName(layer, kinds[k]), [outDim, inDim], shared: false))
                {
                    var block = combined.narrow(0, offset, outDim);
                    block.copy_(dense);
                    modules[k] = new DenseLinear(block);
                }
                offset += outDim;
            }
            return modules;
        }

        long h = config.HiddenSize;
        var family = config.Family;
        var embed = options.LoadEmbeddings || config.TieWordEmbeddings && options.LoadHead
            ? Dense(ModelLayout.EmbeddingsName, [config.VocabSize, h], options.DType)
            : empty([0, h], options.DType, options.Device);

        RmsNorm? Norm(int layer, NormRole role) => family.Norm(role) is { } norm
            ? new RmsNorm(Dense(ModelLayout.NormName(layer, norm), [norm.PerHead ? config.HeadDim : h], options.DType), config.RmsNormEps, config.NormOffset)
            : null;
        Tensor? Bias(int layer, ProjectionKind kind) => ModelLayout.HasBias(config, kind)
            ? Dense(ModelLayout.BiasName(layer, kind), [ModelLayout.Shape(config, kind).Out], options.DType)
            : null;
        // q, k, v and gate, up are multiplied as groups where the family keeps them apart; Phi-3's fused ones are one each
        IEnumerable<(ProjectionKind, nn.Module<Tensor, Tensor>, Tensor?)> Section(int layer, ProjectionKind[] group, ProjectionKind last)
        {
            var kinds = family.Projections.Where(k => ModelLayout.IsAttention(k) == ModelLayout.IsAttention(last)).ToArray();
            var grouped = kinds.SequenceEqual([.. group, last]) ? Group(layer, group) : null;
            return kinds.Select((k, i) => (k, grouped != null && i < group.Length ? grouped[i] : Proj(layer, k), Bias(layer, k))).ToArray();
        }

        var layers = new List<DecoderBlock>();
        for (int i = first; i < first + count; i++)
        {
            var attention = new SelfAttention(config, i, Section(i, [ProjectionKind.Q, ProjectionKind.K, ProjectionKind.V], ProjectionKind.O),
                Norm(i, NormRole.Query), Norm(i, NormRole.Key));
            var mlp = new FeedForward(config.Activation, Section(i, [ProjectionKind.Gate, ProjectionKind.Up], ProjectionKind.Down));
            layers.Add(new DecoderBlock(Norm(i, NormRole.AttentionInput)!, attention, Norm(i, NormRole.MlpInput)!, mlp,
                Norm(i, NormRole.AttentionOutput), Norm(i, NormRole.MlpOutput)));
        }

        var norm = new RmsNorm(options.LoadHead ? Dense(ModelLayout.FinalNormName, [h], options.DType) : ones(h, options.DType, options.Device),
            config.RmsNormEps, config.NormOffset);
        nn.Module<Tensor, Tensor>? head = null;
        if (options.LoadHead && !config.TieWordEmbeddings)
        {
            // lm_head stays 16-bit as in QLoRA: it is never handed to the quantizing factory.
            head = new DenseLinear(Dense(ModelLayout.HeadName, [config.VocabSize, h], options.DType));
        }
        var model = new DecoderModel(config, options.DType, embed, layers, norm, head, first);
        model.eval(); // inference mode by default (adapter dropout off), as from_pretrained; trainers call train()
        return model;
    }

    private static Tensor Read(ICheckpointReader reader, string name, long[] expected, bool shared)
    {
        if (!reader.Contains(name))
            throw new UserInputException($"{reader.Source}: tensor '{name}' is missing; the checkpoint does not match its config (or is incomplete)");
        var t = shared ? reader.ReadShared(name) : reader.Read(name);
        if (!FloatTensors.IsFloat(t.dtype))
        {
            var dtype = t.dtype;
            t.Dispose();
            FloatTensors.Require(reader.Source, name, dtype, "a model weight",
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
