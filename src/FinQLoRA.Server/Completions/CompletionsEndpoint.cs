using FinQLoRA.Server.Common;
using Microsoft.AspNetCore.Routing;

namespace FinQLoRA.Server.Completions;

/// <summary><c>POST /v1/completions</c>: bind the body to <see cref="CompletionRequest"/> and hand it to
/// <see cref="CompletionsServing"/>.</summary>
internal static class CompletionsEndpoint
{
    public static void Map(RouteGroupBuilder v1, ServerState state) =>
        JsonPost.Map<CompletionRequest>(v1, "/completions", state, CompletionsServing.CreateAsync);
}
