namespace FinQLoRA.Serving;

/// <summary>A request the engine will not take, with the reason and the request field at fault (if one is).</summary>
public sealed class ServingException(ServingErrorKind kind, string message, string? param = null) : Exception(message)
{
    public ServingErrorKind Kind { get; } = kind;
    public string? Param { get; } = param;
}
