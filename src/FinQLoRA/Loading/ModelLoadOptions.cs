using static TorchSharp.torch;
using FinQLoRA.Formats.Checkpoints;
using FinQLoRA.Models;

namespace FinQLoRA.Loading;

/// <summary>How to materialise a checkpoint: compute dtype, device, and what to build for each frozen projection
/// (dense by default; the quantizer supplies 4/8-bit layers).</summary>
public sealed record ModelLoadOptions
{
    public ScalarType DType { get; init; } = ScalarType.BFloat16;
    public Device Device { get; init; } = CPU;

    /// <summary>Builds the module for one projection weight (HF name, weight as stored on the CPU). The weight
    /// tensor is disposed by the loader afterwards, so keep a converted copy, not the argument.</summary>
    public Func<string, Tensor, nn.Module<Tensor, Tensor>>? LinearFactory { get; init; }

    /// <summary>Given the checkpoint, a source of projections it stores already built (the loading layer passes
    /// bitsandbytes-quantized ones: <c>(weight name, [out, in]) → module</c>, null for a projection stored dense), or
    /// null when it stores none. Asked before <see cref="LinearFactory"/>.</summary>
    public Func<ModelConfig, ICheckpointReader, Func<string, long[], nn.Module<Tensor, Tensor>?>?>? StoredProjections { get; init; }

    /// <summary>Tensors used exactly as stored (the model's dtype, pre-quantized 4/8-bit entries, no layout change) are
    /// views of the checkpoint file, mapped copy-on-write, instead of copies (<see cref="Formats.Checkpoints.ICheckpointReader.ReadShared"/>);
    /// false reads every tensor into memory of its own (the baseline of <c>bench load --prequantized</c>).</summary>
    public bool MapWeights { get; init; } = true;

    /// <summary>Layers to load, for pipeline stages: [First, First + Count). Null loads all.</summary>
    public (int First, int Count)? LayerRange { get; init; }

    /// <summary>Skip the embeddings (pipeline stages after the first) and the head (stages before the last).</summary>
    public bool LoadEmbeddings { get; init; } = true;
    public bool LoadHead { get; init; } = true;
}
