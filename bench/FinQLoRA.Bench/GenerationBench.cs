using FinQLoRA.Loading;
using System.Diagnostics;
using FinQLoRA.Demo;
using FinQLoRA.IO;
using FinQLoRA.Models;
using FinQLoRA.Models.Checkpoints;
using FinQLoRA.Models.Gguf;
using LLama;
using LLama.Common;
using LLama.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Bench;

/// <summary>
/// Prefill and decode throughput of our Llama forward pass (KV cache, greedy argmax) against llama.cpp
/// (LLamaSharp) on the same weights in the same process, at batch 1 and 16. llama.cpp runs with an F32 K/V cache
/// and flash attention off, the settings under which its numerics match ours (llama-cpp-crosscheck.md §3), so both
/// sides do the same arithmetic. Every figure is the median of several timed runs after one untimed warm-up,
/// because llama.cpp with 2 threads on a busy 2-core machine is erratic.
/// </summary>
public static class GenerationBench
{
    public const string Help = "prefill/decode tok/s, ours vs llama.cpp [--shared DIR] [--repeats N] [--threads N] [--prompt N] [--decode N] [--skip-random]";

    private sealed record Options(string SharedRoot, int Repeats, int Threads, int PromptTokens, int DecodeSteps, bool SkipRandom);

    /// <summary>Seconds for one prefill of [batch, prompt] and for all decode steps after it.</summary>
    private readonly record struct Timing(double PrefillSeconds, double DecodeSeconds);

    private sealed record Row(string Model, int Batch, string Phase, double OursF32, double OursBf16, double Llama1, double? Llama2, double? TorchStep = null);

    public static int Run(string[] args)
    {
        var opt = Parse(args);
        // Silence llama.cpp's load chatter (it prints hundreds of lines per model) before the first native call.
        NativeLibraryConfig.All.WithLogCallback((level, message) =>
        {
            if (level == LLamaLogLevel.Error) Console.Error.Write(message);
        });
        torch.set_num_threads(opt.Threads);

        var total = Stopwatch.StartNew();
        var rows = new List<Row>();
        string storiesHf = Path.Combine(opt.SharedRoot, "models", "stories260K-hf");
        string storiesGguf = Path.Combine(opt.SharedRoot, "models", "stories260K", "stories260K.gguf");
        if (!File.Exists(storiesGguf) || !Directory.Exists(storiesHf))
            throw new UserInputException($"{opt.SharedRoot}: models/stories260K/stories260K.gguf or models/stories260K-hf not found; pass --shared <folder holding models/>");
        rows.AddRange(Measure("stories260K", storiesHf, storiesGguf, opt, opt.Repeats, warmUp: true, llamaTwoThreadsAtBatch16: true));

        if (!opt.SkipRandom)
        {
            string temp = Directory.CreateTempSubdirectory("finqlora-genbench-").FullName;
            try
            {
                var sw = Stopwatch.StartNew();
                var (folder, gguf, parameters) = WriteRandomModel(temp, storiesHf);
                Console.WriteLine($"random Llama: {parameters / 1e6:F1}M parameters, written as HF + GGUF in {sw.Elapsed.TotalSeconds:F1} s");
                // The stories runs already warmed both engines' code paths; on the 2-core machine one run per figure and no
                // llama.cpp 2-thread run at batch 16 (minutes, and erratic) keep the whole bench near three minutes.
                rows.AddRange(Measure($"random-{parameters / 1e6:F0}M", folder, gguf, opt, 1, warmUp: false, llamaTwoThreadsAtBatch16: false));
            }
            finally
            {
                Directory.Delete(temp, recursive: true);
            }
        }

        PrintTable(rows, opt);
        Console.WriteLine($"total {total.Elapsed.TotalSeconds:F0} s");
        return 0;
    }

    private static Options Parse(string[] args)
    {
        string shared = Path.GetFullPath(Path.Combine(RepoRoot(), "..", "shared"));
        int repeats = 3, threads = 2, prompt = 64, decode = 32;
        bool skipRandom = false;
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new UserInputException($"{args[i]} needs a value");
            int NextInt()
            {
                string name = args[i], v = Next();
                return int.TryParse(v, out int n) && n > 0 ? n : throw new UserInputException($"{name} must be a positive integer (got '{v}')");
            }
            switch (args[i])
            {
                case "--shared": shared = Path.GetFullPath(Next()); break;
                case "--repeats": repeats = NextInt(); break;
                case "--threads": threads = NextInt(); break;
                case "--prompt": prompt = NextInt(); break;
                case "--decode": decode = NextInt(); break;
                case "--skip-random": skipRandom = true; break;
                default: throw new UserInputException($"generate: unknown option '{args[i]}'; options: {Help}");
            }
        }
        return new Options(shared, repeats, threads, prompt, decode, skipRandom);
    }

    /// <summary>The folder holding FinQLoRA.slnx above the running binary (or the current directory).</summary>
    private static string RepoRoot()
    {
        foreach (string start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
            for (var d = new DirectoryInfo(start); d != null; d = d.Parent)
                if (File.Exists(Path.Combine(d.FullName, "FinQLoRA.slnx"))) return d.FullName;
        return Directory.GetCurrentDirectory();
    }

    private static IEnumerable<Row> Measure(string name, string hfFolder, string gguf, Options opt, int repeats, bool warmUp, bool llamaTwoThreadsAtBatch16)
    {
        var rows = new List<Row>();
        foreach (int batch in new[] { 1, 16 })
        {
            var prompts = Prompts(batch, opt.PromptTokens);
            var f32 = Median($"{name} b{batch} ours fp32", () => Ours(hfFolder, ScalarType.Float32, prompts, opt.DecodeSteps, repeats, warmUp));
            var bf16 = Median($"{name} b{batch} ours bf16", () => Ours(hfFolder, ScalarType.BFloat16, prompts, opt.DecodeSteps, repeats, warmUp));
            // batch 1 also through libtorch alone, the baseline of the managed single-token step
            Timing? torchStep = batch == 1 ? Median($"{name} b{batch} ours fp32, libtorch step", () => Ours(hfFolder, ScalarType.Float32, prompts, opt.DecodeSteps, repeats, warmUp, managedStep: false)) : null;
            var l1 = Median($"{name} b{batch} llama.cpp 1t", () => LlamaCpp(gguf, 1, prompts, opt.DecodeSteps, repeats, warmUp));
            Timing? l2 = batch == 1 || llamaTwoThreadsAtBatch16 ? Median($"{name} b{batch} llama.cpp 2t", () => LlamaCpp(gguf, 2, prompts, opt.DecodeSteps, repeats, warmUp)) : null;
            double prefillTokens = batch * opt.PromptTokens, decodeTokens = batch * opt.DecodeSteps;
            rows.Add(new Row(name, batch, "prefill", prefillTokens / f32.PrefillSeconds, prefillTokens / bf16.PrefillSeconds,
                prefillTokens / l1.PrefillSeconds, prefillTokens / l2?.PrefillSeconds));
            rows.Add(new Row(name, batch, "decode", decodeTokens / f32.DecodeSeconds, decodeTokens / bf16.DecodeSeconds,
                decodeTokens / l1.DecodeSeconds, decodeTokens / l2?.DecodeSeconds, decodeTokens / torchStep?.DecodeSeconds));
            Console.WriteLine($"  {name} batch {batch} measured");
        }
        return rows;
    }

    /// <summary>The producer returns all runs (warm-up dropped); prefill and decode medians are taken separately.</summary>
    private static Timing Median(string what, Func<IReadOnlyList<Timing>> runs)
    {
        var clock = Stopwatch.StartNew();
        var all = runs();
        Console.WriteLine($"    {what}: {clock.Elapsed.TotalSeconds:F1} s");
        static double Mid(IEnumerable<double> xs)
        {
            var s = xs.Order().ToArray();
            return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
        }
        return new Timing(Mid(all.Select(t => t.PrefillSeconds)), Mid(all.Select(t => t.DecodeSeconds)));
    }

    /// <summary>BOS then pseudo-random merged-piece ids (259..511 exist in both models' 512-token vocab), a
    /// different sequence per row, so both engines see identical, non-trivial inputs.</summary>
    private static int[][] Prompts(int batch, int length)
    {
        var rng = new Random(1234);
        return Enumerable.Range(0, batch)
            .Select(_ => Enumerable.Range(0, length).Select(i => i == 0 ? 1 : rng.Next(259, 512)).ToArray())
            .ToArray();
    }

    private static IReadOnlyList<Timing> Ours(string folder, ScalarType dtype, int[][] prompts, int steps, int repeats, bool warmUp, bool managedStep = true)
    {
        using var model = ModelLoading.LoadModel(folder, new ModelLoadOptions { DType = dtype });
        model.ManagedDecodeStep = managedStep;
        using var noGrad = no_grad();
        int batch = prompts.Length, length = prompts[0].Length;
        var runs = new List<Timing>();
        for (int r = warmUp ? 0 : 1; r <= repeats; r++)
        {
            using var scope = NewDisposeScope();
            using var cache = new KvCache(model.Config, batch, length + steps, dtype, CPU);
            var ids = tensor(prompts.SelectMany(p => p).Select(i => (long)i).ToArray(), [batch, length], ScalarType.Int64);
            var sw = Stopwatch.StartNew();
            var logits = model.Forward(ids, null, cache, lastOnly: true);
            var next = logits.argmax(-1); // [B, 1]; argmax forces the lazy result like sampling would
            _ = next[0, 0].item<long>();
            double prefill = sw.Elapsed.TotalSeconds;
            sw.Restart();
            for (int s = 0; s < steps; s++)
            {
                using var step = NewDisposeScope();
                logits = model.Forward(next, null, cache, lastOnly: true);
                next = logits.argmax(-1).MoveToOuterDisposeScope();
                _ = next[0, 0].item<long>();
            }
            double decode = sw.Elapsed.TotalSeconds;
            if (r > 0) runs.Add(new Timing(prefill, decode));
        }
        return runs;
    }

    private static IReadOnlyList<Timing> LlamaCpp(string gguf, int threads, int[][] prompts, int steps, int repeats, bool warmUp)
    {
        int batch = prompts.Length, length = prompts[0].Length;
        var p = new ModelParams(gguf)
        {
            // Each of the `batch` sequences gets ContextSize / SeqMax cells.
            ContextSize = (uint)(batch * (length + steps + 8)),
            SeqMax = (uint)batch,
            BatchSize = (uint)Math.Max(batch * length, 64),
            UBatchSize = (uint)Math.Max(batch * length, 64),
            GpuLayerCount = 0,
            Threads = threads,
            BatchThreads = threads,
            TypeK = GGMLType.GGML_TYPE_F32,
            TypeV = GGMLType.GGML_TYPE_F32,
            FlashAttention = false,
        };
        using var weights = LLamaWeights.LoadFromFile(p);
        int vocab = weights.Vocab.Count;
        var runs = new List<Timing>();
        for (int r = warmUp ? 0 : 1; r <= repeats; r++)
        {
            using var ctx = weights.CreateContext(p);
            var b = new LLamaBatch();
            var last = new int[batch];
            for (int s = 0; s < batch; s++)
                for (int i = 0; i < length; i++)
                    last[s] = b.Add((LLamaToken)prompts[s][i], i, (LLamaSeqId)s, i == length - 1);
            var sw = Stopwatch.StartNew();
            Check(ctx.Decode(b));
            var next = Argmax(ctx, last, vocab);
            double prefill = sw.Elapsed.TotalSeconds;
            sw.Restart();
            for (int step = 0; step < steps; step++)
            {
                b.Clear();
                for (int s = 0; s < batch; s++) last[s] = b.Add((LLamaToken)next[s], length + step, (LLamaSeqId)s, true);
                Check(ctx.Decode(b));
                next = Argmax(ctx, last, vocab);
            }
            double decode = sw.Elapsed.TotalSeconds;
            if (r > 0) runs.Add(new Timing(prefill, decode));
        }
        return runs;
    }

    private static void Check(DecodeResult result)
    {
        if (result != DecodeResult.Ok) throw new InvalidOperationException($"llama.cpp decode failed: {result}");
    }

    private static int[] Argmax(LLamaContext ctx, int[] batchIndices, int vocab)
    {
        var ids = new int[batchIndices.Length];
        for (int s = 0; s < batchIndices.Length; s++)
        {
            var logits = ctx.NativeHandle.GetLogitsIth(batchIndices[s]);
            int best = 0;
            for (int v = 1; v < vocab; v++) if (logits[v] > logits[best]) best = v;
            ids[s] = best;
        }
        return ids;
    }

    /// <summary>A randomly initialised fp32 Llama of roughly 76M parameters (768 hidden, 2048 intermediate, 12
    /// layers, 12 heads, 4 KV heads) that reuses stories260K's 512-token tokenizer, written as an HF folder and
    /// converted to an F32 GGUF with our converter.</summary>
    private static (string Folder, string Gguf, long Parameters) WriteRandomModel(string temp, string tokenizerFolder)
    {
        var config = new LlamaConfig
        {
            HiddenSize = 768, IntermediateSize = 2048, NumLayers = 12, NumHeads = 12, NumKvHeads = 4, HeadDim = 64,
            VocabSize = 512, MaxPositionEmbeddings = 2048, RmsNormEps = 1e-5, RopeTheta = 10000.0,
            TieWordEmbeddings = false, BosTokenId = 1, EosTokenIds = [2], TorchDtype = "float32",
        };
        string folder = Path.Combine(temp, "hf");
        RandomLlama.WriteHfFolder(config, folder, seed: 42);
        long parameters = LlamaLayout.Tensors(config).Sum(t => t.Shape.Aggregate(1L, (x, y) => x * y));
        foreach (string file in new[] { "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json" })
            File.Copy(Path.Combine(tokenizerFolder, file), Path.Combine(folder, file));
        string gguf = Path.Combine(temp, "random.gguf");
        ModelConverter.HfToGguf(folder, gguf, null);
        return (folder, gguf, parameters);
    }

    private static void PrintTable(List<Row> rows, Options opt)
    {
        Console.WriteLine();
        Console.WriteLine($"tokens/s, median of {opt.Repeats} runs after a warm-up (random model: 1 run); prompt {opt.PromptTokens} tokens, {opt.DecodeSteps} greedy decode steps; ours on {opt.Threads} torch thread(s)");
        Console.WriteLine("llama.cpp: F32 weights, F32 K/V cache, flash attention off; 1t/2t = threads; ratio = ours fp32 / the faster llama.cpp column");
        Console.WriteLine("ours fp32 at batch 1 decodes with the managed single-token step; 'libtorch step' is the same model with it off");
        string header = $"| {"model",-12} | {"batch",5} | {"phase",-7} | {"ours fp32",10} | {"libtorch step",13} | {"ours bf16",10} | {"llama.cpp 1t",12} | {"llama.cpp 2t",12} | {"ratio",6} |";
        Console.WriteLine(header);
        Console.WriteLine("|" + string.Join("|", header.Split('|')[1..^1].Select(c => new string('-', c.Length))) + "|");
        foreach (var r in rows)
        {
            double reference = Math.Max(r.Llama1, r.Llama2 ?? 0);
            Console.WriteLine($"| {r.Model,-12} | {r.Batch,5} | {r.Phase,-7} | {r.OursF32,10:F0} | {(r.TorchStep is double ts ? ts.ToString("F0") : "-"),13} | {r.OursBf16,10:F0} | {r.Llama1,12:F0} | {(r.Llama2 is double l2 ? l2.ToString("F0") : "-"),12} | {r.OursF32 / reference,6:F2} |");
        }
    }
}
