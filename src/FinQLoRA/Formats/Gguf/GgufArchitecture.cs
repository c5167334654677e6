using FinQLoRA.Models;
using FinQLoRA.Models.Families;

namespace FinQLoRA.Formats.Gguf;

/// <summary>
/// What llama.cpp (the build in LLamaSharp 0.30.0, commit c0c7e147) reads and runs for one <c>general.architecture</c>,
/// beyond the keys every architecture has (<c>{arch}.context_length</c>, <c>embedding_length</c>, …): which biases its
/// loader creates, how it lays a sliding window over the layers, its soft-caps, its query scale, its local RoPE base
/// and the RoPE scalings it can express. <see cref="GgufModelConfig"/> writes and reads the metadata from these facts
/// and refuses, by the config key, whatever an architecture would drop or run differently.
/// </summary>
public sealed record GgufArchitecture
{
    /// <summary><c>general.architecture</c>, and the prefix of its keys.</summary>
    public required string Name { get; init; }

    /// <summary>The projections whose bias llama.cpp's loader creates for this architecture (its
    /// <c>create_tensor_qkv</c> takes optional q/k/v or fused qkv biases for every one; attn_output and MLP biases
    /// only where its tensor list names them). A GGUF with any other bias fails to load there ("wrong number of
    /// tensors").</summary>
    public required IReadOnlyList<ProjectionKind> Biases { get; init; }

    /// <summary>Whether <c>{arch}.attention.sliding_window</c> is written and read.</summary>
    public bool WindowKey { get; init; }

    /// <summary>The period llama.cpp lays the window with (<c>llama_hparams::set_swa_pattern</c>: layer i is windowed
    /// when <c>i % period &lt; period - 1</c>; 1 = every layer): Gemma 2 every other layer, Gemma 3 five of six. Null
    /// where llama.cpp reads no window for the architecture or ignores it (Mistral as <c>llama</c>, Phi-3: it runs
    /// full attention, identical to the window's result only for prompts inside the window).</summary>
    public int? WindowPeriod { get; init; }

    /// <summary>The window llama.cpp uses when the key is absent (Gemma 2: 4096), so that a config without one cannot be
    /// written; null: no window then.</summary>
    public int? DefaultWindow { get; init; }

    /// <summary>The family a file of this architecture is read as when it carries a window (Mistral for <c>llama</c>);
    /// null: the architecture's own family.</summary>
    public ModelFamily? WindowedFamily { get; init; }

    /// <summary>Gemma 2's attention and final logit soft-caps, with the values llama.cpp assumes when the keys are
    /// absent (it always applies them); null where the architecture has none.</summary>
    public (double Attention, double Final)? Softcaps { get; init; }

    /// <summary>The <c>query_pre_attn_scalar</c> llama.cpp uses (it reads no key for it): Gemma's rule by model
    /// size; null means head_dim, as every other architecture scales.</summary>
    public Func<ModelConfig, double>? QueryPreAttnScalar { get; init; }

    /// <summary>The RoPE base of the windowed layers llama.cpp uses when <c>{arch}.rope.freq_base_swa</c> is absent
    /// (Gemma 3: 10000); null where the architecture has no local base.</summary>
    public double? LocalRopeBase { get; init; }

    /// <summary>The <c>rope_scaling</c> types this architecture runs: <c>linear</c> and <c>yarn</c> through
    /// <c>rope.scaling.*</c> keys, <c>llama3</c> through a <c>rope_freqs.weight</c> tensor (only <c>llama</c> loads it),
    /// <c>longrope</c> through <c>rope_factors_long/short.weight</c> (only <c>phi3</c>).</summary>
    public required IReadOnlyList<string> RopeScalings { get; init; }

    /// <summary>Whether RoPE may rotate part of each head (<c>rope.dimension_count</c> &lt; head dim): Phi-3's
    /// partial_rotary_factor.</summary>
    public bool PartialRotary { get; init; }

    public string Key(string key) => $"{Name}.{key}";

    /// <summary>Whether llama.cpp windows layer <paramref name="layer"/>.</summary>
    public bool Windowed(int layer) => WindowPeriod is int p && (p == 1 || layer % p < p - 1);

    public override string ToString() => Name;
}
