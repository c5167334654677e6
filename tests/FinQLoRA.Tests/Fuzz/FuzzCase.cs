namespace FinQLoRA.Tests.Fuzz;

/// <summary>One malformed input: <see cref="Prepare"/> writes it into the case's work folder and returns the CLI arguments that read it.</summary>
internal sealed record FuzzCase(string Name, Func<FuzzWork, string[]> Prepare);
