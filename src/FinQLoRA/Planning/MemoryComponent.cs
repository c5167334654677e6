namespace FinQLoRA.Planning;

/// <summary>One line of a memory plan: what it is, its bytes, and whether it is weight storage or runtime overhead.</summary>
public sealed record MemoryComponent(string Name, long Bytes, bool IsWeight, string Note = "");
