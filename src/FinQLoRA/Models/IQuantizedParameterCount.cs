namespace FinQLoRA.Models;

/// <summary>Quantized layers keep packed bytes instead of parameters; this reports how many weights they stand for.</summary>
public interface IQuantizedParameterCount
{
    long LogicalParameterCount { get; }
}
