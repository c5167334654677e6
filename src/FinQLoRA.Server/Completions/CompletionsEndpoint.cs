using FinQLoRA.Server.Common;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace FinQLoRA.Server.Completions;

/// <summary><c>POST /v1/completions</c>: bind the body to <see cref="CompletionRequest"/> and hand it to
/// <see cref="CompletionsServing"/>. The key check and error mapping are the server's middleware's.</summary>
internal static class CompletionsEndpoint
{
    public static void Map(RouteGroupBuilder v1, ServerState state) =>
        v1.MapPost("/completions", async Task<IResult> (HttpContext context) =>
            await CompletionsServing.CreateAsync(context, state,
                await RequestJson.ReadAsync<CompletionRequest>(context, state.Options.MaxBodyBytes).ConfigureAwait(false)).ConfigureAwait(false));
}
