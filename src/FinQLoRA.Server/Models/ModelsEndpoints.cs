using FinQLoRA.Server.Common;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;

namespace FinQLoRA.Server.Models;

/// <summary><c>GET /v1/models</c> and <c>GET /v1/models/{id}</c>.</summary>
internal static class ModelsEndpoints
{
    public static void Map(RouteGroupBuilder v1, ServerState state)
    {
        v1.MapGet("/models", () => ApiResults.Json(state.Models.List()));
        v1.MapGet("/models/{id}", (string id) => ApiResults.Json(state.Models.Find(id)));
    }
}
