namespace FinQLoRA.Serving;

/// <summary>A request the engine will not take, with the reason and the request field at fault (if one is).</summary>
public sealed class ServingException(ServingErrorKind kind, string message, string? param = null) : Exception(message)
{
    public ServingErrorKind Kind { get; } = kind;
    public string? Param { get; } = param;

    /// <summary>No base or adapter is served under <paramref name="name"/> (OpenAI's wording, the one place it is written).</summary>
    public static ServingException UnknownModel(string name, string param = "model") =>
        new(ServingErrorKind.UnknownModel, $"The model `{name}` does not exist.", param);

    /// <summary>The engine takes no new work: it is draining or stopped.</summary>
    public static ServingException ShuttingDown() => new(ServingErrorKind.ShuttingDown, "the server is shutting down");
}
