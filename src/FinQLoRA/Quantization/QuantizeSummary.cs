namespace FinQLoRA.Quantization;

/// <summary>What <see cref="CheckpointQuantizer.Run"/> wrote: projections quantized, tensors copied, file sizes.</summary>
public sealed record QuantizeSummary(
    string OutputFolder,
    int QuantizedProjections,
    int CopiedTensors,
    long InputWeightBytes,
    long OutputWeightBytes,
    long PeakRssBytes);
