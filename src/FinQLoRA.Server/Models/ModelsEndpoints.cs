using FinQLoRA.Server.Common;
using FinQLoRA.Server.Tenancy;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace FinQLoRA.Server.Models;

/// <summary><c>GET /v1/models</c> and <c>GET /v1/models/{id}</c>.</summary>
internal static class ModelsEndpoints
{
    public static void Map(RouteGroupBuilder v1, ServerState state)
    {
        // a key sees only what it may use: another tenant's adapter is as absent here as in a request
        v1.MapGet("/models", (HttpContext context) => ApiResults.Json(state.Models.List(Tenant.Of(context).Models)));
        v1.MapGet("/models/{id}", (HttpContext context, string id) => ApiResults.Json(state.Models.Find(id, Tenant.Of(context).Models)));
    }
}
