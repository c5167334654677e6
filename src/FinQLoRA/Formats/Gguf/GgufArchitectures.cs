using FinQLoRA.Models;
using FinQLoRA.Models.Families;

namespace FinQLoRA.Formats.Gguf;

/// <summary>
/// The one table of llama.cpp's architectures FinQLoRA writes and reads, as llama.cpp's <c>convert_hf_to_gguf.py</c>
/// writes them and its <c>src/models/*.cpp</c> (<c>load_arch_hparams</c>, <c>load_arch_tensors</c>, the graph) read
/// them. Each family names its architecture (<see cref="ModelFamily.GgufArchitecture"/>); Mistral is written as
/// <c>llama</c>, as llama.cpp's converter does.
/// </summary>
public static class GgufArchitectures
{
    private static readonly IReadOnlyList<ProjectionKind> QkvOnly = [ProjectionKind.Q, ProjectionKind.K, ProjectionKind.V];

    public static readonly GgufArchitecture Llama = new()
    {
        Name = "llama",
        // q, k, v, o (bq..bo) and the optional MLP biases
        Biases = [ProjectionKind.Q, ProjectionKind.K, ProjectionKind.V, ProjectionKind.O, ProjectionKind.Gate, ProjectionKind.Up, ProjectionKind.Down],
        // llama.cpp has no window for its llama architecture and its converter writes none for Mistral; we keep
        // Mistral's window in this key so that GGUF → HF gives the Mistral back, and llama.cpp ignores it.
        WindowKey = true,
        WindowedFamily = LlamaFamily.Mistral,
        RopeScalings = ["llama3", "linear", "yarn"],
    };

    public static readonly GgufArchitecture Qwen2 = new() { Name = "qwen2", Biases = QkvOnly, RopeScalings = ["linear", "yarn"] };

    /// <summary>Qwen3: q/k/v biases load (create_tensor_qkv) but no attn_output.bias, so <c>attention_bias</c> is refused.</summary>
    public static readonly GgufArchitecture Qwen3 = Qwen2 with { Name = "qwen3" };

    /// <summary>Gemma 2: windows on even layers (4096 when the key is absent), soft-caps 50/30 when absent, query
    /// scale 1/√head_dim except for the 27B (46 layers: 1/√(hidden/heads)).</summary>
    public static readonly GgufArchitecture Gemma2 = new()
    {
        Name = "gemma2",
        Biases = QkvOnly,
        WindowKey = true,
        WindowPeriod = 2,
        DefaultWindow = 4096,
        Softcaps = (50.0, 30.0),
        QueryPreAttnScalar = c => c.NumLayers == 46 ? c.HiddenSize / c.NumHeads : c.HeadDim,
        RopeScalings = ["linear"],
    };

    /// <summary>Gemma 3: five windowed layers to one global, RoPE base 10000 on the windowed layers unless
    /// <c>gemma3.rope.freq_base_swa</c> says otherwise (written only then; checked against llama.cpp with 20000), the
    /// scaling on the global ones only, no soft-caps, query scale by size as Gemma 2 (27B: 62 layers).</summary>
    public static readonly GgufArchitecture Gemma3 = new()
    {
        Name = "gemma3",
        Biases = QkvOnly,
        WindowKey = true,
        WindowPeriod = 6,
        QueryPreAttnScalar = c => c.NumLayers == 62 ? c.HiddenSize / c.NumHeads : c.HeadDim,
        LocalRopeBase = 10000.0,
        RopeScalings = ["linear"],
    };

    /// <summary>Phi-3: fused qkv (its bias loads) and gate_up as ffn_up, partial rotary, LongRoPE factors as tensors;
    /// the window key is written (as llama.cpp's converter does) but llama.cpp disables Phi's window.</summary>
    public static readonly GgufArchitecture Phi3 = new()
    {
        Name = "phi3",
        Biases = [ProjectionKind.Qkv],
        WindowKey = true,
        PartialRotary = true,
        RopeScalings = ["longrope"],
    };

    public static IReadOnlyList<GgufArchitecture> All { get; } = [Llama, Qwen2, Qwen3, Gemma2, Gemma3, Phi3];

    public static GgufArchitecture? ByName(string name) => All.FirstOrDefault(a => a.Name == name);

    /// <summary>The architecture a model family is written as.</summary>
    public static GgufArchitecture Of(ModelFamily family) => ByName(family.GgufArchitecture)
        ?? throw new InvalidOperationException($"no GGUF architecture '{family.GgufArchitecture}' for {family}");
}
