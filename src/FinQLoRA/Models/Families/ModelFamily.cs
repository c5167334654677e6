using System.Text.Json.Nodes;

namespace FinQLoRA.Models.Families;

/// <summary>
/// One family's table: the config.json keys that set its architecture switches on <see cref="ModelConfig"/>, and where
/// its checkpoints keep each tensor (Hugging Face module names and llama.cpp's). Everything a family does differently
/// is in its table or in the config record it fills; the model, the loaders and the converters read both and never
/// ask which family they hold.
/// </summary>
public sealed record ModelFamily
{
    /// <summary>config.json's <c>model_type</c>, e.g. <c>qwen2</c>.</summary>
    public required string ModelType { get; init; }
    /// <summary>The transformers class config.json names in <c>architectures</c>.</summary>
    public required string HfArchitecture { get; init; }
    /// <summary>llama.cpp's <c>general.architecture</c> (Mistral is written as <c>llama</c>, as llama.cpp's converter does).</summary>
    public required string GgufArchitecture { get; init; }
    /// <summary>Whether llama.cpp rotates interleaved pairs for this architecture (its LLaMA rope type), so that q and k
    /// rows are permuted on the way to GGUF; the NeoX-rope architectures (Qwen, Gemma, Phi-3) keep HF's order.</summary>
    public bool GgufPermutesRope { get; init; }
    /// <summary>What llama.cpp's converter adds to norm weights (Gemma stores w and computes with 1 + w: llama.cpp
    /// stores 1 + w).</summary>
    public float GgufNormOffset { get; init; }
    /// <summary>The block's linear projections, in module order: what PEFT's <c>all-linear</c> selects.</summary>
    public IReadOnlyList<ProjectionKind> Projections { get; init; } = Separate;
    /// <summary>The block's norms, in llama.cpp's file order.</summary>
    public required IReadOnlyList<BlockNorm> Norms { get; init; }
    /// <summary>Sets the family's switches from its config keys on the common fields read already.</summary>
    public required Func<ConfigJson, ModelConfig, ModelConfig> ReadArchitecture { get; init; }
    /// <summary>Writes the family's keys into a config.json being written.</summary>
    public required Action<ModelConfig, JsonObject> WriteArchitecture { get; init; }

    /// <summary>q, k, v, o, gate, up, down: every family but Phi-3.</summary>
    public static readonly IReadOnlyList<ProjectionKind> Separate =
        [ProjectionKind.Q, ProjectionKind.K, ProjectionKind.V, ProjectionKind.O, ProjectionKind.Gate, ProjectionKind.Up, ProjectionKind.Down];

    public BlockNorm? Norm(NormRole role) => Norms.FirstOrDefault(n => n.Role == role);

    public override string ToString() => ModelType;
}
