using LLama;
using LLama.Common;
using LLama.Native;

namespace FinQLoRA.Tests.Support;

/// <summary>
/// llama.cpp (LLamaSharp 0.30.0) as an independent reference, with the settings that make its logits exact to ~5e-6
/// (shared/docs/llama-cpp-crosscheck.md §3): F32 K/V cache and flash attention off (else logits drift by 1e-2), one
/// thread (else timings explode on 2 cores). Either hold one instance (one model, several runs) or use the static
/// one-shot helpers, which load the model for each call.
/// </summary>
public sealed class LlamaCppReference : IDisposable
{
    private static readonly object Gate = new(); // one native model at a time in the one-shot helpers keeps the 2-core machine calm

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
        return Decode(ctx, prompt, greedyTokens);
    }

    public void Dispose() => _weights.Dispose();

    /// <summary>One-shot: loads <paramref name="model"/>, tokenizes, unloads.</summary>
    public static int[] Tokenize(string model, string text, bool addBos = true)
    {
        lock (Gate)
        {
            using var reference = new LlamaCppReference(model, contextSize: 256);
            return reference.Tokenize(text, addBos);
        }
    }

    /// <summary>One-shot: logits at every prompt position, then <paramref name="greedy"/> greedy continuation ids,
    /// with the GGUF adapter <paramref name="lora"/> at scale 1 if given.</summary>
    public static (float[][] Logits, int[] Continuation) Run(string model, int[] prompt, int greedy = 0, string? lora = null)
    {
        lock (Gate)
        {
            using var reference = new LlamaCppReference(model, contextSize: 256);
            var adapter = lora == null ? null : reference.Weights.NativeHandle.LoadLoraFromFile(lora);
            try
            {
                return reference.Run(prompt, greedy, adapter == null ? null : [(adapter, 1.0f)]);
            }
            finally
            {
                adapter?.Unload();
            }
        }
    }

    /// <summary>Decodes the prompt with logits at every position, then <paramref name="greedy"/> argmax steps.</summary>
    public static (float[][] Logits, int[] Continuation) Decode(LLamaContext ctx, int[] prompt, int greedy)
    {
        var batch = new LLamaBatch();
        for (int i = 0; i < prompt.Length; i++) batch.Add(prompt[i], i, LLamaSeqId.Zero, true);
        if (ctx.Decode(batch) != DecodeResult.Ok) throw new InvalidOperationException("llama.cpp decode failed");
        var logits = Enumerable.Range(0, prompt.Length).Select(i => ctx.NativeHandle.GetLogitsIth(i).ToArray()).ToArray();
        var continuation = new List<int>();
        var last = logits[^1];
        for (int step = 0; step < greedy; step++)
        {
            int next = ArgMax(last);
            continuation.Add(next);
            batch.Clear();
            batch.Add(next, prompt.Length + step, LLamaSeqId.Zero, true);
            if (ctx.Decode(batch) != DecodeResult.Ok) throw new InvalidOperationException("llama.cpp decode failed");
            last = ctx.NativeHandle.GetLogitsIth(0).ToArray();
        }
        return (logits, continuation.ToArray());
    }

    public static int ArgMax(float[] x)
    {
        int best = 0;
        for (int i = 1; i < x.Length; i++) if (x[i] > x[best]) best = i;
        return best;
    }

    public static double MaxAbsDiff(float[][] a, float[][] b)
    {
        if (a.Length != b.Length) throw new ArgumentException("different position counts");
        double max = 0;
        for (int i = 0; i < a.Length; i++)
        {
            if (a[i].Length != b[i].Length) throw new ArgumentException("different vocabulary sizes");
            for (int j = 0; j < a[i].Length; j++) max = Math.Max(max, Math.Abs(a[i][j] - b[i][j]));
        }
        return max;
    }
}
