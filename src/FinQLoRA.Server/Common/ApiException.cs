namespace FinQLoRA.Server.Common;

/// <summary>A request answered with an OpenAI-shaped error: <c>{"error":{"message","type","param","code"}}</c>.</summary>
public sealed class ApiException(int status, string message, string? param = null, string? code = null, string? type = null) : Exception(message)
{
    public int Status { get; } = status;
    public string? Param { get; } = param;
    public string? Code { get; } = code;
    /// <summary>Sent as the <c>retry-after</c> header (whole seconds, at least 1) with a 429 of a rate limit.</summary>
    public int? RetryAfterSeconds { get; init; }
    public string Type { get; } = type ?? (status switch
    {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        >= 500 => "server_error",
        _ => "invalid_request_error",
    });
}
