namespace FinQLoRA.Hub;

/// <summary>A Hub answer worth retrying (HTTP 408, 429, 5xx): the server is busy or restarting, not refusing us.</summary>
internal sealed class HubTransientException(string message) : Exception(message);
