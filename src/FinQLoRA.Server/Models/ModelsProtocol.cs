namespace FinQLoRA.Server.Models;

// GET /v1/models and /v1/models/{id}, field for field as OpenAI names them, plus vLLM's root, parent and max_model_len.

/// <summary>A model the server answers to: the base (parent null) or an adapter on it (parent and root = the base).</summary>
internal sealed record ModelCard(
    string Id,
    string Object,
    long Created,
    string OwnedBy,
    string Root,
    string? Parent,
    int MaxModelLen);

internal sealed record ModelList(string Object, IReadOnlyList<ModelCard> Data);
