namespace FinQLoRA.Hub;

/// <summary>Where the Hub is, who we are, and where downloads are cached.</summary>
public sealed record HubSettings
{
    public const string DefaultEndpoint = "https://huggingface.co";

    public required Uri Endpoint { get; init; }

    /// <summary>A Hugging Face access token sent as <c>Authorization: Bearer</c>; null for anonymous access.</summary>
    public string? Token { get; init; }

    public required string CacheRoot { get; init; }

    public HubRetryPolicy Retry { get; init; } = HubRetryPolicy.Default;

    /// <summary>
    /// Reads <c>HF_ENDPOINT</c> (default https://huggingface.co), <c>HF_TOKEN</c>, and the cache folder:
    /// <c>$FINQLORA_CACHE</c>, else <c>$XDG_CACHE_HOME/finqlora/hub</c>, else <c>~/.cache/finqlora/hub</c>.
    /// </summary>
    public static HubSettings FromEnvironment(Func<string, string?>? getEnvironment = null)
    {
        getEnvironment ??= Environment.GetEnvironmentVariable;
        string? Get(string name) => getEnvironment(name) is { Length: > 0 } v ? v.Trim() : null;

        string endpointText = Get("HF_ENDPOINT") ?? DefaultEndpoint;
        if (!Uri.TryCreate(endpointText, UriKind.Absolute, out Uri? endpoint) || (endpoint.Scheme != Uri.UriSchemeHttps && endpoint.Scheme != Uri.UriSchemeHttp))
            throw new UserInputException($"HF_ENDPOINT='{endpointText}' is not an http(s) URL; unset it or set it to e.g. {DefaultEndpoint}");

        string cache = Get("FINQLORA_CACHE")
            ?? (Get("XDG_CACHE_HOME") is { } xdg ? Path.Combine(xdg, "finqlora", "hub") : null)
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "finqlora", "hub");

        return new HubSettings { Endpoint = WithTrailingSlash(endpoint), Token = Get("HF_TOKEN"), CacheRoot = Path.GetFullPath(cache) };
    }

    /// <summary>Relative URLs resolve under the endpoint's path only when it ends in '/' (mirrors may live under a prefix).</summary>
    public static Uri WithTrailingSlash(Uri endpoint) =>
        endpoint.AbsoluteUri.EndsWith('/') ? endpoint : new Uri(endpoint.AbsoluteUri + "/");
}
