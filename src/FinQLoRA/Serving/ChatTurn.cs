namespace FinQLoRA.Serving;

/// <summary>One chat turn: role (system, user or assistant) and its text.</summary>
public sealed record ChatTurn(string Role, string Content);
