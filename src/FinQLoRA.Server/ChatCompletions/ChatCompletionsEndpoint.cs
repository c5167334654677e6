using FinQLoRA.Server.Common;
using Microsoft.AspNetCore.Routing;

namespace FinQLoRA.Server.ChatCompletions;

/// <summary><c>POST /v1/chat/completions</c>: bind the body to <see cref="ChatCompletionRequest"/> (a message field of
/// the wrong type named by its path) and hand it to <see cref="ChatCompletionsServing"/>.</summary>
internal static class ChatCompletionsEndpoint
{
    public static void Map(RouteGroupBuilder v1, ServerState state) =>
        JsonPost.Map<ChatCompletionRequest>(v1, "/chat/completions", state, ChatCompletionsServing.CreateAsync, ChatCompletionsServing.MessagesTypeError);
}
