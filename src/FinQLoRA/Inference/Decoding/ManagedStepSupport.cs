using FinQLoRA.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Inference.Decoding;

/// <summary>
/// What the managed single-token step (<see cref="SingleTokenDecoder"/>) implements, stated as data so that the
/// choice between it and the libtorch step can be read and tested: the Llama block (RMSNorm, rotate-half RoPE with
/// the default or <c>llama3</c> frequencies, grouped-query attention and a SwiGLU MLP, both without biases, a tied or
/// separate head) over fp32 activations on the CPU, with dense fp32 or unbiased 4-bit (NF4/FP4, through the fused gemv
/// kernel) projections and a dense fp32 head, one sequence, one token per step, no gradients, and a KV cache of the
/// whole model (a <see cref="KvCache"/> of batch 1, or the engine's first slot while its row runs alone:
/// <see cref="IFirstRowAsWholeCache"/>). 8-bit weights and adapters are outside it (<see cref="SingleTokenDecoder.TryCreate"/>
/// says so by returning null). Anything else takes the libtorch step, which computes every configuration the model
/// loads; a field added to <see cref="ModelConfig"/> for another family must be rejected here until the step computes it.
/// </summary>
public static class ManagedStepSupport
{
    public static ScalarType ComputeDType => ScalarType.Float32;
    public static DeviceType Device => DeviceType.CPU;
    public const int Batch = 1;

    /// <summary>RoPE frequency rules it computes (<see cref="RotaryEmbedding.InverseFrequencies"/>; "default" = no scaling).</summary>
    public static IReadOnlySet<string> RopeTypes { get; } = new HashSet<string>(StringComparer.Ordinal) { "default", "llama3" };

    /// <summary>Why the architecture is outside the step's set, or null when the step computes it.</summary>
    public static string? Rejects(ModelConfig config) => config switch
    {
        { QkvBias: true } => "q/k/v biases (attention_bias, or Qwen2's)",
        { OutputBias: true } => "an o_proj bias (attention_bias)",
        { MlpBias: true } => "MLP biases (mlp_bias)",
        { Family.Projections: var p } when !p.SequenceEqual(Models.Families.ModelFamily.Separate) => "fused qkv/gate_up projections",
        { QkNorm: true } => "q/k norms",
        { NormOffset: not 0 } => "RMSNorm with an offset (1 + w)",
        { Activation: not Activation.Silu } => $"the {config.Activation} activation",
        { SandwichNorms: true } => "norms after attention and the MLP",
        { ScaleEmbeddings: true } => "scaled embeddings",
        { AttentionSoftcap: not null } or { FinalSoftcap: not null } => "logit soft-capping",
        { QueryPreAttnScalar: double q } when q != config.HeadDim => "a query scale other than 1/√head_dim",
        { SlidingLayers.Count: > 0 } => "sliding-window attention",
        { PartialRotaryFactor: not 1.0 } => "partial rotary embeddings",
        { RopeScaling: { } s } when !RopeTypes.Contains(s.Type) => $"RoPE scaling '{s.Type}'",
        { HeadDim: var d } when d % 2 != 0 => $"odd head_dim {d}",
        _ => null,
    };

    /// <summary>Why the model (architecture, compute dtype, device) is outside the step's set, or null.</summary>
    public static string? Rejects(DecoderModel model) =>
        Rejects(model.Config)
        ?? (model.ComputeDType != ComputeDType ? $"compute dtype {model.ComputeDType}" : null)
        ?? (model.Device.type != Device ? $"device {model.Device.type}" : null);

    /// <summary>Why decode steps over this cache are outside the step's set (a cache that is neither the whole-model
    /// <see cref="KvCache"/> nor a slot pool whose first row is one, its dtype or batch, a pipeline stage's partial
    /// cache, gradients on), or null. Over a slot pool the step runs only while one row runs (it sits in the first
    /// slot); <see cref="ManagedDecodeStep"/> hands steps of more rows to the libtorch step.</summary>
    public static string? Rejects(DecoderModel model, IKvCache cache) =>
        Rejects(model)
        ?? Rejects(cache)
        ?? (is_grad_enabled() ? "gradients enabled" : null);

    private static string? Rejects(IKvCache cache) => cache switch
    {
        IFirstRowAsWholeCache rows => Rejects(rows.FirstRow(0)),
        not KvCache => $"a {cache.GetType().Name} (rows at their own lengths, not one whole-model cache)",
        KvCache { Layout: var l } when l != (ComputeDType, (long)Batch) => $"a {l.DType} cache of batch {l.Batch}",
        KvCache { FirstLayer: not 0 } c => $"a cache from layer {c.FirstLayer} (a pipeline stage)",
        _ => null,
    };
}
