using System.Diagnostics;
using FinQLoRA.Loading;
using FinQLoRA.Serving;
using static TorchSharp.torch;

namespace FinQLoRA.Bench;

/// <summary>
/// Automatic prefix caching's effect on the time to first token: a request whose 1,500-token prefix is in the prefix
/// cache (only the rest of its prompt is computed) against the same request with a prefix never seen (the whole
/// prompt is prefilled, in chunks of the default 1,024 tokens), on the engine, from submitting to the first token.
/// Each trial has its own 24-token tail, so only the prefix can hit. Medians of several trials.
/// </summary>
public static class PrefixCacheBench
{
    private const int Prefix = 1500, Tail = 24;

    public static void Run(string folder, bool quick)
    {
        int trials = quick ? 3 : 7;
        var tokenizer = ModelLoading.LoadTokenizer(folder);
        using var model = ModelLoading.LoadModel(folder, new ModelLoadOptions { DType = ScalarType.Float32 });
        int vocab = model.Config.VocabSize;
        int[] Ids(int count, int seed) => Enumerable.Range(0, count).Select(i => 3 + (int)(((long)i * 7919 + seed * 104729L) % (vocab - 3))).ToArray();
        int[] Prompt(int[] prefix, int trial) => [1, .. prefix, .. Ids(Tail, 1000 + trial)];

        using var engine = new ServingEngine(model, tokenizer, new EngineOptions
        {
            MaxBatch = 4, MaxModelLen = 2048, PrefixCacheBytes = 256L << 20,
        });
        double FirstToken(int[] prompt, out int cached)
        {
            var sw = Stopwatch.StartNew();
            var reader = engine.Submit(new EngineRequest(prompt, null, new SamplingParams { MaxTokens = 1 }));
            var first = reader.ReadAsync().AsTask().GetAwaiter().GetResult();   // one token asked for: the final event
            double seconds = sw.Elapsed.TotalSeconds;
            cached = first.CachedTokens;
            return seconds;
        }

        int[] shared = Ids(Prefix - 1, 1);
        FirstToken(Prompt(Ids(Prefix - 1, 2), 0), out _); // warm-up, and the shared prefix into the cache:
        FirstToken(Prompt(shared, 0), out _);
        var uncached = new List<double>();
        var hits = new List<double>();
        int hitTokens = 0;
        for (int t = 1; t <= trials; t++)
        {
            uncached.Add(FirstToken(Prompt(Ids(Prefix - 1, 10 + t), t), out int none));
            if (none != 0) throw new InvalidOperationException($"a prefix never seen read {none} tokens from the cache");
            hits.Add(FirstToken(Prompt(shared, t), out hitTokens));
        }
        double cold = Median(uncached), warm = Median(hits);
        Console.WriteLine($"prefix cache, random-76M (f32, engine, {Prefix}-token prefix + {Tail}-token tail, median of {trials}, {Cpu()}, {get_num_threads()} threads)");
        Console.WriteLine($"  TTFT uncached {cold * 1000:F0} ms, cached ({hitTokens} tokens hit) {warm * 1000:F0} ms: {cold / warm:F1}x faster");
    }

    private static double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);

    /// <summary>The CPU's model name, as lscpu prints it (/proc/cpuinfo's "model name").</summary>
    private static string Cpu()
    {
        try
        {
            return File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown CPU";
        }
        catch (IOException)
        {
            return "unknown CPU";
        }
    }
}
