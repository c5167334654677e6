using FinQLoRA.Server.Common;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace FinQLoRA.Server.ChatCompletions;

/// <summary><c>POST /v1/chat/completions</c>: bind the body to <see cref="ChatCompletionRequest"/> and hand it to
/// <see cref="ChatCompletionsServing"/>. The key check and error mapping are the server's middleware's.</summary>
internal static class ChatCompletionsEndpoint
{
    public static void Map(RouteGroupBuilder v1, ServerState state) =>
        v1.MapPost("/chat/completions", async Task<IResult> (HttpContext context) =>
            await ChatCompletionsServing.CreateAsync(context, state,
                await RequestJson.ReadAsync<ChatCompletionRequest>(context, state.Options.MaxBodyBytes, ChatCompletionsServing.MessagesTypeError).ConfigureAwait(false)).ConfigureAwait(false));
}
