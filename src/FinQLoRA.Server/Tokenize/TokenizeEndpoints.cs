using FinQLoRA.Server.Common;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace FinQLoRA.Server.Tokenize;

/// <summary><c>POST /tokenize</c> and <c>POST /detokenize</c>, at the root as vLLM has them (the key check is the
/// middleware's, as for /v1).</summary>
internal static class TokenizeEndpoints
{
    public static void Map(IEndpointRouteBuilder app, ServerState state)
    {
        app.MapPost("/tokenize", async Task<IResult> (HttpContext context) =>
        {
            var request = await RequestJson.ReadAsync<TokenizeRequest>(context, state.Options.MaxBodyBytes).ConfigureAwait(false);
            return ApiResults.Json(TokenizeServing.Tokenize(context, state, request));
        });
        app.MapPost("/detokenize", async Task<IResult> (HttpContext context) =>
        {
            var request = await RequestJson.ReadAsync<DetokenizeRequest>(context, state.Options.MaxBodyBytes).ConfigureAwait(false);
            return ApiResults.Json(TokenizeServing.Detokenize(context, state, request));
        });
    }
}
