using LLama;
using LLama.Common;
using LLama.Native;

namespace FinQLoRA.Tests.Support;

/// <summary>
/// llama.cpp (through LLamaSharp) as an independent reference. Settings from shared/docs/llama-cpp-crosscheck.md:
/// F32 K/V cache and flash attention off (else logits drift by 1e-2), one thread (else timings explode on 2 cores).
/// </summary>
public sealed class LlamaCppReference : IDisposable
{
    private readonly LLamaWeights _weights;
    private readonly ModelParams _params;

    public LlamaCppReference(string ggufPath, int contextSize = 512)
    {
        _params = new ModelParams(ggufPath)
        {
            ContextSize = (uint)contextSize, GpuLayerCount = 0, BatchSize = (uint)contextSize, UBatchSize = (uint)contextSize,
            Threads = 1, TypeK = GGMLType.GGML_TYPE_F32, TypeV = GGMLType.GGML_TYPE_F32, FlashAttention = false,
        };
        _weights = LLamaWeights.LoadFromFile(_params);
    }

    public LLamaWeights Weights => _weights;
    public int VocabSize => _weights.Vocab.Count;

    public int[] Tokenize(string text, bool addBos = true)
    {
        using var ctx = _weights.CreateContext(_params);
        return ctx.Tokenize(text, addBos, special: false).Select(t => (int)t).ToArray();
    }

    /// <summary>Logits at every prompt position [T][vocab], and a greedy continuation of <paramref name="greedyTokens"/> ids.</summary>
    public (float[][] Logits, int[] Greedy) Run(int[] prompt, int greedyTokens, IReadOnlyList<(LoraAdapter Adapter, float Scale)>? adapters = null)
    {
        using var ctx = _weights.CreateContext(_params);
        if (adapters is { Count: > 0 }) ctx.NativeHandle.SetLoraAdapters(adapters.Select(a => (a.Adapter, a.Scale)).ToArray());
        return FinQLoRA.Tests.Models.Gguf.LlamaCpp.Decode(ctx, prompt, greedyTokens);
    }

    public void Dispose() => _weights.Dispose();
}
