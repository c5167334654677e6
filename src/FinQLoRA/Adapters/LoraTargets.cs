namespace FinQLoRA.Adapters;

/// <summary>The projection names LoRA can target in a Llama block, and where each one lives.</summary>
public static class LoraTargets
{
    public static readonly IReadOnlyList<string> Attention = ["q_proj", "k_proj", "v_proj", "o_proj"];
    public static readonly IReadOnlyList<string> Mlp = ["gate_proj", "up_proj", "down_proj"];
    /// <summary>Every linear projection of a block, in module order (what PEFT's "all-linear" selects; lm_head excluded).</summary>
    public static readonly IReadOnlyList<string> All = [.. Attention, .. Mlp];

    /// <summary>The HF module path of a projection: <c>model.layers.{i}.self_attn.q_proj</c>.</summary>
    public static string ModulePath(int layer, string projection) =>
        $"model.layers.{layer}.{(IsAttention(projection) ? "self_attn" : "mlp")}.{projection}";

    public static bool IsAttention(string projection) => Attention.Contains(projection);

    /// <summary>Position of a projection in module order (q, k, v, o, gate, up, down); -1 if unknown.</summary>
    public static int Index(string projection) => All.ToList().IndexOf(projection);

    /// <summary>(in, out) features of a projection for a model config.</summary>
    public static (long In, long Out) Shape(Models.LlamaConfig c, string projection) => projection switch
    {
        "q_proj" => (c.HiddenSize, c.QDim),
        "k_proj" or "v_proj" => (c.HiddenSize, c.KvDim),
        "o_proj" => (c.QDim, c.HiddenSize),
        "gate_proj" or "up_proj" => (c.HiddenSize, c.IntermediateSize),
        "down_proj" => (c.IntermediateSize, c.HiddenSize),
        _ => throw new ArgumentException($"unknown projection '{projection}'", nameof(projection)),
    };

    /// <summary>Expands "all"/"all-linear", removes duplicates (keeping the given order) and rejects unknown names.</summary>
    public static IReadOnlyList<string> Resolve(IEnumerable<string> targets, string source)
    {
        var list = targets.Select(t => t.Trim()).Where(t => t.Length > 0).ToList();
        if (list.Count == 0)
            throw new UserInputException($"{source}: target_modules is empty; name projections ({string.Join(", ", All)}) or use \"all\"");
        if (list.Any(t => t is "all" or "all-linear")) return All;
        var unknown = list.Where(t => !All.Contains(t)).ToList();
        if (unknown.Count > 0)
            throw new UserInputException($"{source}: unknown target module(s) {string.Join(", ", unknown.Select(u => $"'{u}'"))}; valid names are {string.Join(", ", All)} or \"all\" (lm_head cannot be targeted)");
        return list.Distinct().ToList();
    }
}
