namespace FinQLoRA.Data.Chat;

/// <summary>A stretch of a training sequence's text and whether the loss covers it (what <see cref="ChatTemplate.Render"/>
/// yields: the assistant turns trained, the template's framing not).</summary>
public sealed record SftSegment(string Text, bool Trained);
