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
        var batch = new LLamaBatch();
        for (int i = 0; i < prompt.Length; i++) batch.Add(prompt[i], i, LLamaSeqId.Zero, true);
        if (ctx.Decode(batch) != DecodeResult.Ok) throw new InvalidOperationException("llama.cpp decode failed");
        int vocab = VocabSize;
        var logits = new float[prompt.Length][];
        for (int i = 0; i < prompt.Length; i++) logits[i] = ctx.NativeHandle.GetLogitsIth(i).ToArray();
        var greedy = new List<int>();
        var last = logits[^1];
        int pos = prompt.Length;
        for (int n = 0; n < greedyTokens; n++)
        {
            int next = ArgMax(last);
            greedy.Add(next);
            batch.Clear();
            batch.Add(next, pos++, LLamaSeqId.Zero, true);
            if (ctx.Decode(batch) != DecodeResult.Ok) throw new InvalidOperationException("llama.cpp decode failed");
            last = ctx.NativeHandle.GetLogitsIth(0).ToArray();
        }
        _ = vocab;
        return (logits, greedy.ToArray());
    }

    public static int ArgMax(ReadOnlySpan<float> v)
    {
        int best = 0;
        for (int i = 1; i < v.Length; i++) if (v[i] > v[best]) best = i;
        return best;
    }

    public void Dispose() => _weights.Dispose();
}
