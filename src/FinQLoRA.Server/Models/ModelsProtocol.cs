using System.Text.Json.Serialization;

namespace FinQLoRA.Server.Models;

// GET /v1/models and /v1/models/{id}, field for field as OpenAI names them, plus vLLM's root, parent and max_model_len.

/// <summary>A model the server answers to: the base (parent null) or an adapter on it (parent and root = the base).</summary>
internal sealed record ModelCard(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("created")] long Created,
    [property: JsonPropertyName("owned_by")] string OwnedBy,
    [property: JsonPropertyName("root")] string Root,
    [property: JsonPropertyName("parent")] string? Parent,
    [property: JsonPropertyName("max_model_len")] int MaxModelLen);

internal sealed record ModelList(
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("data")] IReadOnlyList<ModelCard> Data);
