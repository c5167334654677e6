using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http;

namespace FinQLoRA.Server.Audit;

/// <summary>
/// The id a request is known by in the <c>x-request-id</c> response header, the audit log and its completion ids
/// (<c>cmpl-ID</c>, <c>chatcmpl-ID</c>). As vLLM: the client's own <c>x-request-id</c> when it sent one, else a random
/// UUID's 32 hex digits. A client's id is reused only when it is a short safe token (1-64 letters, digits, '.', '_',
/// ':' or '-'), so that nothing a client sends can break a header, a log line or a log reader; another is replaced.
/// </summary>
internal static partial class RequestIds
{
    public const string Header = "x-request-id";

    public static string Of(HttpRequest request) =>
        request.Headers[Header] is { Count: 1 } given && given[0] is { } id && SafeToken().IsMatch(id) ? id : New();

    public static string New() => Guid.NewGuid().ToString("N");

    [GeneratedRegex("^[A-Za-z0-9._:-]{1,64}$")]
    private static partial Regex SafeToken();
}
