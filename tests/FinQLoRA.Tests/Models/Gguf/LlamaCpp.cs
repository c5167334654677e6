using LLama;
using LLama.Common;
using LLama.Native;

namespace FinQLoRA.Tests.Models.Gguf;

/// <summary>
/// llama.cpp (LLamaSharp 0.30.0) as an independent reference, with the settings that make its logits exact to ~5e-6
/// (llama-cpp-crosscheck.md §3): F32 K/V cache, flash attention off, one thread.
/// </summary>
internal static class LlamaCpp
{
    private static readonly object Gate = new(); // one native model at a time keeps the 2-core machine calm

    private static ModelParams Params(string path) => new(path)
    {
        ContextSize = 256, GpuLayerCount = 0, BatchSize = 256, UBatchSize = 256, Threads = 1,
        TypeK = GGMLType.GGML_TYPE_F32, TypeV = GGMLType.GGML_TYPE_F32, FlashAttention = false,
    };

    public static int[] Tokenize(string model, string text, bool addBos = true)
    {
        lock (Gate)
        {
            var p = Params(model);
            using var weights = LLamaWeights.LoadFromFile(p);
            using var ctx = weights.CreateContext(p);
            return ctx.Tokenize(text, addBos, special: false).Select(t => (int)t).ToArray();
        }
    }

    /// <summary>Logits at every prompt position, then <paramref name="greedy"/> greedy continuation ids.</summary>
    public static (float[][] Logits, int[] Continuation) Run(string model, int[] prompt, int greedy = 0, string? lora = null)
    {
        lock (Gate)
        {
            var p = Params(model);
            using var weights = LLamaWeights.LoadFromFile(p);
            using var ctx = weights.CreateContext(p);
            LoraAdapter? adapter = null;
            if (lora != null)
            {
                adapter = weights.NativeHandle.LoadLoraFromFile(lora);
                ctx.NativeHandle.SetLoraAdapters(new (LoraAdapter, float)[] { (adapter, 1.0f) });
            }
            try
            {
                return Decode(ctx, prompt, greedy);
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
