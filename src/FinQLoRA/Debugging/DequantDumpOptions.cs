using FinQLoRA.Loading;

namespace FinQLoRA.Debugging;

/// <summary>What <see cref="DequantDump"/> reads and writes.</summary>
public sealed record DequantDumpOptions
{
    /// <summary>A pre-quantized HF folder (bitsandbytes), or any checkpoint with <see cref="Load"/> quantizing it as it loads.</summary>
    public required string ModelPath { get; init; }
    /// <summary>Device and the quantize-as-it-loads factory (<c>--bits 4/8</c>); a stored quantization is used as stored.</summary>
    public required ModelLoadOptions Load { get; init; }
    public required string OutPath { get; init; }
    public bool Overwrite { get; init; }
}
