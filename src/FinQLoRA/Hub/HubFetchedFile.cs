namespace FinQLoRA.Hub;

/// <summary>One file placed in the output folder; <see cref="FromCache"/> when no byte was downloaded for it.</summary>
public sealed record HubFetchedFile(HubFile File, string LocalPath, bool FromCache);
