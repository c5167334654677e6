using System.Globalization;
using FinQLoRA.Models.Families;

namespace FinQLoRA.Models;

/// <summary>The linear projections of a block, in module order: q, k, v, o, gate, up, down, and Phi-3's fused qkv and
/// gate_up (which a family has instead of q/k/v and gate/up).</summary>
public enum ProjectionKind { Q, K, V, O, Gate, Up, Down, Qkv, GateUp }

/// <summary>What a tensor of a checkpoint is for.</summary>
public enum TensorRole { Embeddings, Norm, Projection, Bias, FinalNorm, Head }

/// <summary>One tensor of a checkpoint: its Hugging Face and GGUF names, its shape for a config (PyTorch order, [out, in]
/// for a projection) and what it is. <see cref="Layer"/> is -1 outside the blocks.</summary>
public sealed record LayoutTensor(string HfName, string GgufName, long[] Shape, TensorRole Role, int Layer = -1,
    ProjectionKind? Projection = null, BlockNorm? Norm = null);

/// <summary>
/// The one table of a checkpoint's layout: tensor names (Hugging Face's <c>model.layers.N.self_attn.q_proj.weight</c>
/// and llama.cpp's <c>blk.N.attn_q.weight</c>, as llama.cpp's <c>tensor_mapping.py</c> pairs them), module paths, shapes
/// from the config and the projection kinds; each family's norms and projections come from its
/// <see cref="ModelFamily"/> table. Loading, adapters, quantization, conversion, merging and the random models all read
/// it, so no other file spells a tensor name.
/// </summary>
public static class ModelLayout
{
    private sealed record ProjectionEntry(string Module, string Section, string Gguf);

    private const string AttentionSection = "self_attn";
    private const string MlpSection = "mlp";

    // indexed by ProjectionKind
    private static readonly ProjectionEntry[] ProjectionTable =
    [
        new("q_proj", AttentionSection, "attn_q"),
        new("k_proj", AttentionSection, "attn_k"),
        new("v_proj", AttentionSection, "attn_v"),
        new("o_proj", AttentionSection, "attn_output"),
        new("gate_proj", MlpSection, "ffn_gate"),
        new("up_proj", MlpSection, "ffn_up"),
        new("down_proj", MlpSection, "ffn_down"),
        new("qkv_proj", AttentionSection, "attn_qkv"),
        new("gate_up_proj", MlpSection, "ffn_up"), // llama.cpp's phi3 keeps gate and up as one ffn_up, gate first
    ];

    private const string LayerPrefix = "model.layers.";
    private const string GgufLayerPrefix = "blk.";

    public const string EmbeddingsName = "model.embed_tokens.weight";
    public const string FinalNormName = "model.norm.weight";
    public const string HeadName = "lm_head.weight";
    public const string GgufEmbeddingsName = "token_embd.weight";
    public const string GgufFinalNormName = "output_norm.weight";
    public const string GgufHeadName = "output.weight";

    /// <summary>The Llama block's projections (every family's but Phi-3's), in module order.</summary>
    public static IReadOnlyList<ProjectionKind> Projections => ModelFamily.Separate;
    /// <summary>Every projection name any family has, for parsing target names.</summary>
    public static IReadOnlyList<ProjectionKind> AllKinds { get; } = Enum.GetValues<ProjectionKind>();

    /// <summary>The module name inside its block section, as Hugging Face and PEFT spell it: <c>q_proj</c>.</summary>
    public static string ModuleName(ProjectionKind kind) => ProjectionTable[(int)kind].Module;

    /// <summary>The projection a module name means (<c>q_proj</c> → Q), or null for any other name.</summary>
    public static ProjectionKind? ParseModuleName(string name)
    {
        int i = Array.FindIndex(ProjectionTable, p => p.Module == name);
        return i < 0 ? null : (ProjectionKind)i;
    }

    public static bool IsAttention(ProjectionKind kind) => ProjectionTable[(int)kind].Section == AttentionSection;

    /// <summary>The module path of a projection: <c>model.layers.{i}.self_attn.q_proj</c>.</summary>
    public static string ModulePath(int layer, ProjectionKind kind) => $"{LayerPrefix}{layer}.{Relative(kind)}";

    /// <summary>The weight of a projection: <c>model.layers.{i}.self_attn.q_proj.weight</c>.</summary>
    public static string WeightName(int layer, ProjectionKind kind) => ModulePath(layer, kind) + ".weight";

    /// <summary>llama.cpp's name of a projection's weight: <c>blk.{i}.attn_q.weight</c> (the same in every family).</summary>
    public static string GgufWeightName(int layer, ProjectionKind kind) => Gguf(layer, ProjectionTable[(int)kind].Gguf, "weight");

    /// <summary>The bias of a projection: <c>model.layers.{i}.self_attn.q_proj.bias</c>.</summary>
    public static string BiasName(int layer, ProjectionKind kind) => ModulePath(layer, kind) + ".bias";

    /// <summary>How the weight of a projection is named with the layer left open, for messages.</summary>
    public static string WeightNamePattern(ProjectionKind kind) => $"{LayerPrefix}N.{Relative(kind)}.weight";

    /// <summary>The weight of a block norm: <c>model.layers.{i}.input_layernorm.weight</c>.</summary>
    public static string NormName(int layer, BlockNorm norm) => $"{LayerPrefix}{layer}.{norm.HfModule}.weight";

    /// <summary>(in, out) features of a projection for a model config.</summary>
    public static (long In, long Out) Shape(ModelConfig c, ProjectionKind kind) => kind switch
    {
        ProjectionKind.Q => (c.HiddenSize, c.QDim),
        ProjectionKind.K or ProjectionKind.V => (c.HiddenSize, c.KvDim),
        ProjectionKind.O => (c.QDim, c.HiddenSize),
        ProjectionKind.Gate or ProjectionKind.Up => (c.HiddenSize, c.IntermediateSize),
        ProjectionKind.Down => (c.IntermediateSize, c.HiddenSize),
        ProjectionKind.Qkv => (c.HiddenSize, c.QDim + 2L * c.KvDim),
        ProjectionKind.GateUp => (c.HiddenSize, 2L * c.IntermediateSize),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
    };

    /// <summary>Whether a config gives this projection a bias.</summary>
    public static bool HasBias(ModelConfig c, ProjectionKind kind) => kind switch
    {
        ProjectionKind.Q or ProjectionKind.K or ProjectionKind.V or ProjectionKind.Qkv => c.QkvBias,
        ProjectionKind.O => c.OutputBias,
        _ => c.MlpBias,
    };

    /// <summary>How many heads permute a projection's rows between HF and GGUF RoPE order (q: n_heads,
    /// k: n_kv_heads) for families llama.cpp rotates interleaved, or null when the rows stay as they are.</summary>
    public static int? RopeHeads(ProjectionKind kind, ModelConfig config) => !config.Family.GgufPermutesRope ? null : kind switch
    {
        ProjectionKind.Q => config.NumHeads,
        ProjectionKind.K => config.NumKvHeads,
        _ => null,
    };

    /// <summary>Every tensor of a checkpoint for a config, in llama.cpp's file order: embeddings, then per block the
    /// norms, projections and biases, then the final norm and (unless tied to the embeddings) lm_head.</summary>
    public static IEnumerable<LayoutTensor> Tensors(ModelConfig config)
    {
        long h = config.HiddenSize;
        yield return new(EmbeddingsName, GgufEmbeddingsName, [config.VocabSize, h], TensorRole.Embeddings);
        for (int i = 0; i < config.NumLayers; i++)
            foreach (var t in BlockTensors(config, i)) yield return t;
        yield return new(FinalNormName, GgufFinalNormName, [h], TensorRole.FinalNorm);
        if (!config.TieWordEmbeddings) yield return new(HeadName, GgufHeadName, [config.VocabSize, h], TensorRole.Head);
    }

    /// <summary>The tensors of block <paramref name="layer"/>: the family's norms, then its projections, each followed
    /// by its bias where the config gives it one.</summary>
    public static IEnumerable<LayoutTensor> BlockTensors(ModelConfig config, int layer)
    {
        foreach (var norm in config.Family.Norms)
            yield return new(NormName(layer, norm), Gguf(layer, norm.GgufName, "weight"), [norm.PerHead ? config.HeadDim : config.HiddenSize],
                TensorRole.Norm, layer, Norm: norm);
        foreach (var kind in config.Family.Projections)
        {
            var (inF, outF) = Shape(config, kind);
            string gguf = ProjectionTable[(int)kind].Gguf;
            yield return new(WeightName(layer, kind), Gguf(layer, gguf, "weight"), [outF, inF], TensorRole.Projection, layer, kind);
            if (HasBias(config, kind))
                yield return new(BiasName(layer, kind), Gguf(layer, gguf, "bias"), [outF], TensorRole.Bias, layer, kind);
        }
    }

    /// <summary>Parses a projection's module path (<c>model.layers.3.mlp.up_proj</c>); false for anything else,
    /// including a projection under the wrong section.</summary>
    public static bool TryParseModulePath(string path, out int layer, out ProjectionKind kind)
    {
        layer = -1;
        kind = default;
        if (!path.StartsWith(LayerPrefix, StringComparison.Ordinal)) return false;
        var parts = path[LayerPrefix.Length..].Split('.');
        if (parts.Length != 3 || !IsLayerNumber(parts[0], out layer)) return false;
        int i = Array.FindIndex(ProjectionTable, p => p.Section == parts[1] && p.Module == parts[2]);
        if (i < 0) return false;
        kind = (ProjectionKind)i;
        return true;
    }

    /// <summary>Parses a projection's weight name (<c>model.layers.3.mlp.up_proj.weight</c>).</summary>
    public static bool TryParseWeightName(string name, out int layer, out ProjectionKind kind)
    {
        layer = -1;
        kind = default;
        return name.EndsWith(".weight", StringComparison.Ordinal) && TryParseModulePath(name[..^".weight".Length], out layer, out kind);
    }

    /// <summary>Splits <c>model.layers.N.{section}.{module}</c> into N and the section-qualified module
    /// (<c>self_attn.q_proj</c>) without checking that the module exists; false when the shape is not that.</summary>
    public static bool TrySplitBlockModule(string path, out int layer, out string sectionAndModule)
    {
        layer = -1;
        sectionAndModule = "";
        if (!path.StartsWith(LayerPrefix, StringComparison.Ordinal)) return false;
        var parts = path[LayerPrefix.Length..].Split('.', 2);
        if (parts.Length != 2 || !IsLayerNumber(parts[0], out layer)) return false;
        sectionAndModule = parts[1];
        return true;
    }

    /// <summary>The section-qualified module of a projection (<c>self_attn.q_proj</c>), as in a module path.</summary>
    public static string Relative(ProjectionKind kind) => $"{ProjectionTable[(int)kind].Section}.{ProjectionTable[(int)kind].Module}";

    private static string Gguf(int layer, string module, string suffix) => $"{GgufLayerPrefix}{layer}.{module}.{suffix}";

    private static bool IsLayerNumber(string s, out int layer)
    {
        layer = -1;
        return s.Length > 0 && s.All(char.IsAsciiDigit) && int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out layer);
    }
}
