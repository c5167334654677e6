namespace FinQLoRA.Debugging;

/// <summary>A written dump: the safetensors file, its record (<c>FILE.json</c>) and every tensor's name and shape.</summary>
public sealed record DebugDumpResult(string File, string Record, IReadOnlyList<(string Name, long[] Shape)> Tensors);
