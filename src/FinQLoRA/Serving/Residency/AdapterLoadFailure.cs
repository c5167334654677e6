namespace FinQLoRA.Serving.Residency;

/// <summary>An adapter whose folder could not be read when it was needed (moved, damaged after it was registered): the
/// requests waiting for it end with <see cref="Error"/>; a later request tries the folder again.</summary>
internal sealed record AdapterLoadFailure(string Name, Exception Error);
