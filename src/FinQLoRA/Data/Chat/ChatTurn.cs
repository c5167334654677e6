namespace FinQLoRA.Data.Chat;

/// <summary>One message of a conversation: its role (system, user, assistant…) and its text. The one message type
/// of training data, <c>generate --chat</c>, the HTTP server and the IChatClient.</summary>
public sealed record ChatTurn(string Role, string Content);
