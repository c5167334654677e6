using System.Text.Json;

namespace FinQLoRA.Server.Models;

// GET /v1/models and /v1/models/{id}, field for field as OpenAI names them, plus vLLM's root, parent and max_model_len
// and our finqlora_lineage.

/// <summary>A model the server answers to: the base (parent null) or an adapter on it (parent and root = the base).
/// <c>finqlora_lineage</c> is an extension (clients ignore fields they do not know): an adapter's <c>lineage.json</c>
/// as recorded when it was loaded (<see cref="AdapterLineage"/>), null for the base and for an adapter without one.</summary>
internal sealed record ModelCard(
    string Id,
    string Object,
    long Created,
    string OwnedBy,
    string Root,
    string? Parent,
    int MaxModelLen,
    JsonElement? FinqloraLineage);

internal sealed record ModelList(string Object, IReadOnlyList<ModelCard> Data);
