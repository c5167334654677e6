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
/// while its row runs alone: <see cref="IFirstRowAsWholeCache"/>). A projection may carry one active plain LoRA adapter,
/// whose term the step adds as the libtorch step's no-grad forward does (<see cref="RejectsAdapter"/>); DoRA, stacked
/// per-row adapters (the server's batches) and adapters in training mode are outside it (<see cref="RejectsWeight"/>;
/// <see cref="SingleTokenDecoder.TryCreate"/> returns null, and a step that meets one later is libtorch's). Anything else takes the libtorch
/// step, which computes every configuration the model loads; a field added to <see cref="ModelConfig"/> for another family
/// must be rejected here until the step computes it.
/// </summary>
public static class ManagedStepSupport
{
    /// <summary>Activation dtypes it computes: fp32, and bf16 rounded where the libtorch bf16 step rounds
    /// (<see cref="Bf16StepMath"/>).</summary>
    public static IReadOnlySet<ScalarType> ComputeDTypes { get; } = new HashSet<ScalarType> { ScalarType.Float32, ScalarType.BFloat16 };

    /// <summary>Projection weights it multiplies: dense in the compute dtype, unbiased bitsandbytes 4-bit (NF4/FP4,
    /// plain or double-quantized scales) through <see cref="FourBitGemvKernel"/>, and unbiased LLM.int8 (outlier columns
    /// included) through <see cref="Int8RowQuantizer"/> and <see cref="Int8GemvKernel"/>, as the libtorch step's fused
    /// gemv multiplies them; any of them inside an adapter wrapper with no adapter active, or with one plain LoRA
    /// adapter active (<see cref="AdapterKinds"/>).</summary>
    public static IReadOnlyList<string> WeightKinds { get; } = ["dense (compute dtype)", "4-bit NF4/FP4", "8-bit LLM.int8", "any of them under an adapter wrapper"];

    /// <summary>The adapter states of a wrapper it computes: none active (the base alone), or one LoRA adapter active
    /// with fp32 weights in eval mode, its term added as <see cref="LoraLinear"/>'s fused gemv adds it (a dense base: as
    /// its no-grad forward adds <c>s·B·A·x</c> to the base output, in fp32, then rounds to the output dtype).</summary>
    public static IReadOnlyList<string> AdapterKinds { get; } = ["none active", "one active LoRA adapter (fp32, no DoRA, eval mode)"];

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
    /// <paramref name="computeDType"/> (an adapter state outside <see cref="AdapterKinds"/>, a bias, another dtype,
    /// quantized weights with the fused kernels off), or null. An adapter wrapper is judged by its adapter state and its
    /// base (<see cref="ManagedDecodeStep"/> hands a step to libtorch if the state leaves the set later).</summary>
    public static string? RejectsWeight(nn.Module projection, ScalarType computeDType) => projection switch
    {
        LoraLinear lora => RejectsAdapter(lora) ?? RejectsWeight(lora.BaseLayer, computeDType),
        DenseLinear d when d.Weight.dtype != computeDType => $"a {d.Weight.dtype} dense weight in a {computeDType} model",
        DenseLinear d when !d.Weight.is_contiguous() || d.Weight.shape[1] > int.MaxValue => "a non-contiguous or over-wide dense weight",
        DenseLinear => null,
        QuantizedLinear { Bias: not null } => "a biased quantized projection",
        QuantizedLinear { Weight: Blockwise4BitTensor } when !FusedGemv.Enabled => $"4-bit weights with {FusedGemv.EnvironmentVariable}=off (dequantize-then-matmul asked for)",
        QuantizedLinear { Weight: Blockwise4BitTensor q } when q.Shape.Length == 2 && q.Shape[1] <= int.MaxValue => null,
        QuantizedLinear { Weight: Int8RowwiseTensor } when !FusedGemv.Enabled => $"8-bit weights with {FusedGemv.EnvironmentVariable}=off (dequantize-then-matmul asked for)",
        QuantizedLinear { Weight: Int8RowwiseTensor q } when q.Shape.Length == 2 && q.Shape[1] <= int.MaxValue => null,
        QuantizedLinear { Weight: var w } => $"{w.GetType().Name} weights",
        _ => $"a {projection.GetType().Name} projection (an adapter or another kind)",
    };

    /// <summary>Why the adapter state of <paramref name="lora"/> is outside <see cref="AdapterKinds"/> (stacked per-row
    /// adapters, a gradient capture, DoRA, training mode, weights that are not contiguous fp32 CPU tensors), or null.
    /// The step reads the state again before every step, so an adapter activated, switched or switched off between
    /// steps is the one the next step adds.</summary>
    public static string? RejectsAdapter(LoraLinear lora)
    {
        if (lora.Stacked is not null) return "stacked adapters (each row its own adapter, as the server batches them)";
        if (lora.Capture is not null) return "a per-example gradient capture";
        if (lora.ActiveAdapter is not { } name) return null;
        var adapter = lora.Adapters[name];
        if (adapter.UseDora) return "an active DoRA adapter";
        if (lora.training) return "an active adapter in training mode (its dropout)";
        if (adapter.A.dtype != ScalarType.Float32 || adapter.B.dtype != ScalarType.Float32) return $"an adapter of {adapter.A.dtype} weights (fp32 expected)";
        if (!adapter.A.is_contiguous() || !adapter.B.is_contiguous() || adapter.A.device_type != DeviceType.CPU || adapter.B.device_type != DeviceType.CPU)
            return "an adapter whose weights are not contiguous CPU tensors";
        return null;
    }

    private static string? Rejects(IKvCache cache, ScalarType dtype) => cache switch
    {
        IFirstRowAsWholeCache rows => Rejects(rows.FirstRow(0), dtype),
        not KvCache => $"a {cache.GetType().Name} (rows at their own lengths, not one whole-model cache)",
        KvCache { Layout: var l } when l != (dtype, (long)Batch) => $"a {l.DType} cache of batch {l.Batch}",
        KvCache { FirstLayer: not 0 } c => $"a cache from layer {c.FirstLayer} (a pipeline stage)",
        _ => null,
    };
}
