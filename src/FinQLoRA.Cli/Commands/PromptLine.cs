namespace FinQLoRA.Cli.Commands;

/// <summary>One line of a prompts file. <see cref="Adapter"/> is the line's <c>"adapter"</c> value; <see cref="NamesAdapter"/>
/// tells a missing key (use the default) from an explicit <c>null</c> or <c>"base"</c> (the base model).</summary>
public sealed record PromptLine(string Prompt, string? Adapter, bool NamesAdapter);
