using FinQLoRA.Server.Common;
using Microsoft.AspNetCore.Routing;

namespace FinQLoRA.Server.Decisions;

/// <summary><c>POST /v1/decisions</c>: bind the body to <see cref="DecisionsRequest"/> and hand it to <see cref="DecisionsServing"/>.</summary>
internal static class DecisionsEndpoint
{
    public static void Map(RouteGroupBuilder v1, ServerState state) =>
        JsonPost.Map<DecisionsRequest>(v1, "/decisions", state, DecisionsServing.CreateAsync);
}
