using System.Collections.Concurrent;
using System.Text.Json;
using FinQLoRA.Server.Common;
using FinQLoRA.Server.Tenancy;
using FinQLoRA.Serving;

namespace FinQLoRA.Server.Models;

/// <summary>The names requests may use: the base under its served name, each adapter under its own (vLLM's listing:
/// an adapter's <c>parent</c> and <c>root</c> are the base), with each adapter's lineage as read when it was loaded.</summary>
internal sealed class ServedModels(ServingEngine engine, string baseName, long created, int maxModelLen)
{
    private readonly ConcurrentDictionary<string, JsonElement> _lineages = new(StringComparer.Ordinal);

    public string BaseName => baseName;

    /// <summary>The adapter a model id selects (null = the base); 404 for an unknown id.</summary>
    public string? Resolve(string model)
    {
        if (model == baseName) return null;
        if (engine.HasAdapter(model)) return model;
        throw ApiErrors.From(ServingException.UnknownModel(model));
    }

    /// <summary>The served names <paramref name="grant"/> allows, the base first.</summary>
    public ModelList List(ModelGrant grant) =>
        new("list", [.. new[] { Card(baseName, null) }.Concat(engine.Adapters.Select(a => Card(a, baseName))).Where(c => grant.Allows(c.Id))]);

    /// <summary>The card of a served id the grant allows; 404 for an unknown one and, alike, for one it does not allow.</summary>
    public ModelCard Find(string id, ModelGrant grant) =>
        !grant.Allows(id) ? throw ApiErrors.From(ServingException.UnknownModel(id))
        : id == baseName ? Card(baseName, null)
        : engine.HasAdapter(id) ? Card(id, baseName)
        : throw ApiErrors.From(ServingException.UnknownModel(id));

    /// <summary>Records what <paramref name="adapter"/>'s lineage.json held when it was loaded (null: none).</summary>
    public void SetLineage(string adapter, JsonElement? lineage)
    {
        if (lineage is { } l) _lineages[adapter] = l;
        else _lineages.TryRemove(adapter, out _);
    }

    private ModelCard Card(string id, string? parent) =>
        new(id, "model", created, "finqlora", baseName, parent, maxModelLen,
            parent is not null && _lineages.TryGetValue(id, out var lineage) ? lineage : null);
}
