namespace FinQLoRA.Serving;

/// <summary>Why the engine refused a request; the HTTP layer maps each to its status.</summary>
public enum ServingErrorKind
{
    /// <summary>A field is out of range (400).</summary>
    InvalidRequest,
    /// <summary>Prompt plus max_tokens exceed the context (400).</summary>
    ContextLength,
    /// <summary>No base or adapter of that name (404).</summary>
    UnknownModel,
    /// <summary>The waiting queue is full (429).</summary>
    QueueFull,
    /// <summary>The server is stopping (503).</summary>
    ShuttingDown,
}
