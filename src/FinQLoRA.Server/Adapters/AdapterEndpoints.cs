using FinQLoRA.Server.Common;
using FinQLoRA.Server.Tenancy;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace FinQLoRA.Server.Adapters;

/// <summary><c>POST /v1/load_lora_adapter</c> and <c>POST /v1/unload_lora_adapter</c>: refused before the body is read
/// when the API key may not manage adapters (403) or runtime loading is off, then bound and handed to
/// <see cref="AdapterServing"/>; vLLM's plain-text answer.</summary>
internal static class AdapterEndpoints
{
    public static void Map(RouteGroupBuilder v1, ServerState state)
    {
        v1.MapPost("/load_lora_adapter", async Task<IResult> (HttpContext context) =>
        {
            Tenant.AuthorizeAdapterManagement(context);
            AdapterServing.Enabled(state);
            var request = await RequestJson.ReadAsync<LoadLoraAdapterRequest>(context, state.Options.MaxBodyBytes).ConfigureAwait(false);
            return TypedResults.Text(await AdapterServing.LoadAsync(context, state, request).ConfigureAwait(false), "text/plain");
        });
        v1.MapPost("/unload_lora_adapter", async Task<IResult> (HttpContext context) =>
        {
            Tenant.AuthorizeAdapterManagement(context);
            AdapterServing.Enabled(state);
            var request = await RequestJson.ReadAsync<UnloadLoraAdapterRequest>(context, state.Options.MaxBodyBytes).ConfigureAwait(false);
            return TypedResults.Text(await AdapterServing.UnloadAsync(context, state, request).ConfigureAwait(false), "text/plain");
        });
    }
}
