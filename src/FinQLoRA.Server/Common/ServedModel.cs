using FinQLoRA.Server.Tenancy;
using FinQLoRA.Server.Audit;
using Microsoft.AspNetCore.Http;

namespace FinQLoRA.Server.Common;

/// <summary>The model a request names: the served name and the adapter it stands for (null for the base).</summary>
internal sealed record ServedModel(string Name, string? Adapter)
{
    /// <summary>Reads the request's <c>model</c> (required), authorises it for the request's API key (a name the key may
    /// not use is the 404 of a name not served, word for word), resolves it (a name not served is refused by the
    /// registry) and labels the request's metrics and audit line with it. The one door of every endpoint that takes a model.</summary>
    public static ServedModel Of(HttpContext context, ServerState state, string? model)
    {
        string name = RequestFields.Required(model, "model");
        Tenant.Authorize(context, name);
        string? adapter = state.Models.Resolve(name);
        context.Items[ServerState.ModelItem] = name; // only served names become metric labels
        AuditEntry.Of(context)?.Served(name, adapter, state.Fingerprints.Of(adapter));
        return new ServedModel(name, adapter);
    }
}
