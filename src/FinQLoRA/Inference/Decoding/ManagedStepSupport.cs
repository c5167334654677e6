using FinQLoRA.Adapters;
using FinQLoRA.Models;
using FinQLoRA.Quantization;
using FinQLoRA.Quantization.Gemv;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Inference.Decoding;

/// <summary>
/// What the managed single-token step (<see cref="SingleTokenDecoder"/>) implements, stated as data so that the
/// choice between it and the libtorch step can be read and tested: the Llama block (RMSNorm, rotate-half RoPE with
/// the default or <c>llama3</c> frequencies, grouped-query attention and a SwiGLU MLP, both without biases, a tied or
/// separate head) over fp32 or bf16 activations (<see cref="ComputeDTypes"/>) on the CPU, with projections of the
/// <see cref="WeightKinds"/> and a dense head of the compute dtype, one sequence, one token per step, no gradients, and a
/// KV cache of the whole model in the compute dtype (a <see cref="KvCache"/> of batch 1, or the engine's first slot
/// while its row runs alone: <see cref="IFirstRowAsWholeCache"/>). 8-bit weights and active adapters are outside it
/// (<see cref="RejectsWeight"/>; <see cref="SingleTokenDecoder.TryCreate"/> returns null). Anything else takes the libtorch
/// step, which computes every configuration the model loads; a field added to <see cref="ModelConfig"/> for another family
/// must be rejected here until the step computes it.
/// </summary>
public static class ManagedStepSupport
{
    /// <summary>Activation dtypes it computes: fp32, and bf16 rounded where the libtorch bf16 step rounds
    /// (<see cref="Bf16StepMath"/>).</summary>
    public static IReadOnlySet<ScalarType> ComputeDTypes { get; } = new HashSet<ScalarType> { ScalarType.Float32, ScalarType.BFloat16 };

    /// <summary>Projection weights it multiplies: dense in the compute dtype, and unbiased bitsandbytes 4-bit (NF4/FP4,
    /// plain or double-quantized scales) through <see cref="FourBitGemvKernel"/>; either one inside an adapter wrapper
    /// with no adapter active.</summary>
    public static IReadOnlyList<string> WeightKinds { get; } = ["dense (compute dtype)", "4-bit NF4/FP4", "either, under an inactive adapter"];

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
        ?? (!ComputeDTypes.Contains(model.ComputeDType) ? $"compute dtype {model.ComputeDType}" : null)
        ?? (model.Device.type != Device ? $"device {model.Device.type}" : null);

    /// <summary>Why decode steps over this cache are outside the step's set (a cache that is neither the whole-model
    /// <see cref="KvCache"/> nor a slot pool whose first row is one, its dtype or batch, a pipeline stage's partial
    /// cache, gradients on), or null. Over a slot pool the step runs only while one row runs (it sits in the first
    /// slot); <see cref="ManagedDecodeStep"/> hands steps of more rows to the libtorch step.</summary>
    public static string? Rejects(DecoderModel model, IKvCache cache) =>
        Rejects(model)
        ?? Rejects(cache, model.ComputeDType)
        ?? (is_grad_enabled() ? "gradients enabled" : null);

    /// <summary>Why a projection module is outside <see cref="WeightKinds"/> for a model of
    /// <paramref name="computeDType"/> (an active adapter around it, 8-bit, a bias, another dtype, 4-bit with the fused
    /// kernels off), or null. An adapter wrapper with no adapter active computes its base alone, and is judged by it
    /// (<see cref="ManagedDecodeStep"/> hands the step back to libtorch once one is activated).</summary>
    public static string? RejectsWeight(nn.Module projection, ScalarType computeDType) => projection switch
    {
        LoraLinear { Stacked: null, ActiveAdapter: null, BaseLayer: var b } => RejectsWeight(b, computeDType),
        LoraLinear => "an active adapter",
        DenseLinear d when d.Weight.dtype != computeDType => $"a {d.Weight.dtype} dense weight in a {computeDType} model",
        DenseLinear d when !d.Weight.is_contiguous() || d.Weight.shape[1] > int.MaxValue => "a non-contiguous or over-wide dense weight",
        DenseLinear => null,
        QuantizedLinear { Bias: not null } => "a biased quantized projection",
        QuantizedLinear { Weight: Blockwise4BitTensor } when !FusedGemv.Enabled => $"4-bit weights with {FusedGemv.EnvironmentVariable}=off (dequantize-then-matmul asked for)",
        QuantizedLinear { Weight: Blockwise4BitTensor q } when q.Shape.Length == 2 && q.Shape[1] <= int.MaxValue => null,
        QuantizedLinear { Weight: var w } => $"{w.GetType().Name} weights",
        _ => $"a {projection.GetType().Name} projection (an adapter or another kind)",
    };

    private static string? Rejects(IKvCache cache, ScalarType dtype) => cache switch
    {
        IFirstRowAsWholeCache rows => Rejects(rows.FirstRow(0), dtype),
        not KvCache => $"a {cache.GetType().Name} (rows at their own lengths, not one whole-model cache)",
        KvCache { Layout: var l } when l != (dtype, (long)Batch) => $"a {l.DType} cache of batch {l.Batch}",
        KvCache { FirstLayer: not 0 } c => $"a cache from layer {c.FirstLayer} (a pipeline stage)",
        _ => null,
    };
}
