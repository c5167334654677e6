using FinQLoRA.Loading;

namespace FinQLoRA.Debugging;

/// <summary>What <see cref="LogitsDump"/> reads and writes.</summary>
public sealed record LogitsDumpOptions
{
    /// <summary>An HF folder (plain or pre-quantized) or a .gguf file, loaded as generate loads it.</summary>
    public required string ModelPath { get; init; }
    /// <summary>Dtype, device and the quantize-as-it-loads factory (generate's <c>--bits/--quant/--double-quant</c>).</summary>
    public required ModelLoadOptions Load { get; init; }
    /// <summary>A PEFT adapter folder applied to the base, or null.</summary>
    public string? Adapter { get; init; }
    /// <summary>Encoded as generate encodes a raw prompt (with BOS where the tokenizer adds one).</summary>
    public required string Prompt { get; init; }
    public required string OutPath { get; init; }
    public bool Overwrite { get; init; }
}
