using System.Globalization;

namespace FinQLoRA.Models;

/// <summary>The seven linear projections of a Llama block, in module order (q, k, v, o, gate, up, down).</summary>
public enum ProjectionKind { Q, K, V, O, Gate, Up, Down }

/// <summary>What a tensor of a Llama checkpoint is for.</summary>
public enum TensorRole { Embeddings, InputNorm, Projection, PostAttentionNorm, FinalNorm, Head }

/// <summary>One tensor of a Llama checkpoint: its Hugging Face and GGUF names, its shape for a config (PyTorch
/// order, [out, in] for a projection) and what it is. <see cref="Layer"/> is -1 outside the blocks.</summary>
public sealed record LayoutTensor(string HfName, string GgufName, long[] Shape, TensorRole Role, int Layer = -1, ProjectionKind? Projection = null);

/// <summary>
/// The one table of a Llama checkpoint's layout: tensor names (Hugging Face's <c>model.layers.N.self_attn.q_proj.weight</c>
/// and llama.cpp's <c>blk.N.attn_q.weight</c>, as llama.cpp's <c>tensor_mapping.py</c> pairs them), module paths, shapes
/// from the config and the projection kinds. Loading, adapters, quantization, conversion, merging and the random
/// models all read it, so no other file spells a tensor name.
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
    ];

    private const string LayerPrefix = "model.layers.";
    private const string GgufLayerPrefix = "blk.";
    private const string InputNormModule = "input_layernorm", GgufInputNorm = "attn_norm";
    private const string PostAttentionNormModule = "post_attention_layernorm", GgufPostAttentionNorm = "ffn_norm";

    public const string EmbeddingsName = "model.embed_tokens.weight";
    public const string FinalNormName = "model.norm.weight";
    public const string HeadName = "lm_head.weight";
    public const string GgufEmbeddingsName = "token_embd.weight";
    public const string GgufFinalNormName = "output_norm.weight";
    public const string GgufHeadName = "output.weight";

    /// <summary>Every projection of a block, in module order (what PEFT's "all-linear" selects; lm_head excluded).</summary>
    public static IReadOnlyList<ProjectionKind> Projections { get; } = Enum.GetValues<ProjectionKind>();
    public static IReadOnlyList<ProjectionKind> AttentionProjections { get; } = [ProjectionKind.Q, ProjectionKind.K, ProjectionKind.V, ProjectionKind.O];
    public static IReadOnlyList<ProjectionKind> MlpProjections { get; } = [ProjectionKind.Gate, ProjectionKind.Up, ProjectionKind.Down];

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

    /// <summary>How the weight of a projection is named with the layer left open, for messages.</summary>
    public static string WeightNamePattern(ProjectionKind kind) => $"{LayerPrefix}N.{Relative(kind)}.weight";

    public static string InputNormName(int layer) => $"{LayerPrefix}{layer}.{InputNormModule}.weight";
    public static string PostAttentionNormName(int layer) => $"{LayerPrefix}{layer}.{PostAttentionNormModule}.weight";

    /// <summary>(in, out) features of a projection for a model config.</summary>
    public static (long In, long Out) Shape(ModelConfig c, ProjectionKind kind) => kind switch
    {
        ProjectionKind.Q => (c.HiddenSize, c.QDim),
        ProjectionKind.K or ProjectionKind.V => (c.HiddenSize, c.KvDim),
        ProjectionKind.O => (c.QDim, c.HiddenSize),
        ProjectionKind.Gate or ProjectionKind.Up => (c.HiddenSize, c.IntermediateSize),
        ProjectionKind.Down => (c.IntermediateSize, c.HiddenSize),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
    };

    /// <summary>How many heads permute a projection's rows between HF and GGUF RoPE order (q: n_heads,
    /// k: n_kv_heads), or null when the rows stay as they are.</summary>
    public static int? RopeHeads(ProjectionKind kind, ModelConfig config) => kind switch
    {
        ProjectionKind.Q => config.NumHeads,
        ProjectionKind.K => config.NumKvHeads,
        _ => null,
    };

    /// <summary>Every tensor of a checkpoint for a config, in llama.cpp's file order: embeddings, then per block the
    /// two norms and the seven projections, then the final norm and (unless tied to the embeddings) lm_head.</summary>
    public static IEnumerable<LayoutTensor> Tensors(ModelConfig config)
    {
        long h = config.HiddenSize;
        yield return new(EmbeddingsName, GgufEmbeddingsName, [config.VocabSize, h], TensorRole.Embeddings);
        for (int i = 0; i < config.NumLayers; i++)
            foreach (var t in BlockTensors(config, i)) yield return t;
        yield return new(FinalNormName, GgufFinalNormName, [h], TensorRole.FinalNorm);
        if (!config.TieWordEmbeddings) yield return new(HeadName, GgufHeadName, [config.VocabSize, h], TensorRole.Head);
    }

    /// <summary>The tensors of block <paramref name="layer"/>: input norm, post-attention norm, q, k, v, o, gate, up, down.</summary>
    public static IEnumerable<LayoutTensor> BlockTensors(ModelConfig config, int layer)
    {
        long h = config.HiddenSize;
        yield return new(InputNormName(layer), Gguf(layer, GgufInputNorm), [h], TensorRole.InputNorm, layer);
        yield return new(PostAttentionNormName(layer), Gguf(layer, GgufPostAttentionNorm), [h], TensorRole.PostAttentionNorm, layer);
        foreach (var kind in Projections)
        {
            var (inF, outF) = Shape(config, kind);
            yield return new(WeightName(layer, kind), Gguf(layer, ProjectionTable[(int)kind].Gguf), [outF, inF], TensorRole.Projection, layer, kind);
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

    /// <summary>The module path <see cref="TrySplitBlockModule"/> took apart.</summary>
    public static string BlockModulePath(int layer, string sectionAndModule) => $"{LayerPrefix}{layer}.{sectionAndModule}";

    /// <summary>The section-qualified module of a projection (<c>self_attn.q_proj</c>), as in a module path.</summary>
    public static string Relative(ProjectionKind kind) => $"{ProjectionTable[(int)kind].Section}.{ProjectionTable[(int)kind].Module}";

    /// <summary>The section-qualified module names of every projection, with their alternatives, for messages:
    /// <c>self_attn|mlp</c>.</summary>
    public static string Sections => $"{AttentionSection}|{MlpSection}";

    /// <summary>The GGUF name of an HF Llama tensor, or null when it is not one of the Llama weights.</summary>
    public static string? ToGguf(string hf) => ByHf.GetValueOrDefault(hf)?.Gguf ?? BlockNameMap(hf, LayerPrefix, GgufLayerPrefix, fromHf: true);

    /// <summary>The HF name of a GGUF Llama tensor, or null when it is not one of the Llama weights.</summary>
    public static string? ToHf(string gguf) => ByGguf.GetValueOrDefault(gguf)?.Hf ?? BlockNameMap(gguf, GgufLayerPrefix, LayerPrefix, fromHf: false);

    /// <summary>Which head count permutes an HF tensor's rows (q: n_heads, k: n_kv_heads), or null for none.</summary>
    public static int? RopeHeads(string hfName, ModelConfig config) =>
        TryParseWeightName(hfName, out _, out var kind) ? RopeHeads(kind, config) : null;

    private sealed record GlobalName(string Hf, string Gguf);

    private static readonly GlobalName[] GlobalNames =
        [new(EmbeddingsName, GgufEmbeddingsName), new(FinalNormName, GgufFinalNormName), new(HeadName, GgufHeadName)];
    private static readonly Dictionary<string, GlobalName> ByHf = GlobalNames.ToDictionary(g => g.Hf);
    private static readonly Dictionary<string, GlobalName> ByGguf = GlobalNames.ToDictionary(g => g.Gguf);

    /// <summary>Per-block module pairs: HF's section-qualified module and GGUF's name after <c>blk.N.</c>.</summary>
    private static readonly (string Hf, string Gguf)[] BlockModules =
    [
        (InputNormModule, GgufInputNorm),
        (PostAttentionNormModule, GgufPostAttentionNorm),
        .. ProjectionTable.Select(p => ($"{p.Section}.{p.Module}", p.Gguf)),
    ];

    private static string? BlockNameMap(string name, string fromPrefix, string toPrefix, bool fromHf)
    {
        if (!name.StartsWith(fromPrefix, StringComparison.Ordinal) || !name.EndsWith(".weight", StringComparison.Ordinal)) return null;
        var rest = name[fromPrefix.Length..^".weight".Length].Split('.', 2);
        if (rest.Length != 2 || !IsLayerNumber(rest[0], out int layer)) return null;
        foreach (var (hf, gguf) in BlockModules)
            if ((fromHf ? hf : gguf) == rest[1]) return $"{toPrefix}{layer}.{(fromHf ? gguf : hf)}.weight";
        return null;
    }

    private static string Gguf(int layer, string module) => $"{GgufLayerPrefix}{layer}.{module}.weight";

    private static bool IsLayerNumber(string s, out int layer)
    {
        layer = -1;
        return s.Length > 0 && s.All(char.IsAsciiDigit) && int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out layer);
    }
}
