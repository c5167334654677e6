using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace FinQLoRA.Server.Common;

/// <summary>A POST route whose body binds to a protocol record (<see cref="RequestJson"/>) and is handed to the logic
/// that answers it. The key check and error mapping are the server's middleware's.</summary>
internal static class JsonPost
{
    public static void Map<TRequest>(RouteGroupBuilder group, string route, ServerState state,
        Func<HttpContext, ServerState, TRequest, Task<IResult>> serve, Func<string, ApiException?>? typeError = null) =>
        group.MapPost(route, async Task<IResult> (HttpContext context) =>
        {
            var request = await RequestJson.ReadAsync<TRequest>(context, state.Options.MaxBodyBytes, typeError).ConfigureAwait(false);
            return await serve(context, state, request).ConfigureAwait(false);
        });
}
