using FinQLoRA.Loading;
using System.Diagnostics;
using FinQLoRA.Demo;
using FinQLoRA.IO;
using FinQLoRA.Inference.Decoding;
using FinQLoRA.Models;
using FinQLoRA.Formats.Checkpoints;
using FinQLoRA.Formats.Gguf;
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
/// sides do the same arithmetic. Every figure is the median of several interleaved rounds after one untimed warm-up,
/// because llama.cpp with 2 threads on a busy 2-core machine is erratic and the machine's speed drifts.
/// </summary>
public static class GenerationBench
{
    public const string Help = "prefill/decode tok/s, ours vs llama.cpp [--shared DIR] [--repeats N] [--threads N] [--prompt N] [--long-prompt N] [--decode N] [--skip-random]; " + QuantizedGenerationBench.Help;

    private sealed record Options(string SharedRoot, int Repeats, int Threads, int PromptTokens, int LongPromptTokens, int DecodeSteps, bool SkipRandom);

    /// <summary>Seconds for one prefill of [batch, prompt] and for all decode steps after it.</summary>
    internal readonly record struct Timing(double PrefillSeconds, double DecodeSeconds);

    private sealed record Row(string Model, int Batch, int Prompt, string Phase, double OursF32, double OursBf16, double Llama1, double? Llama2, double Ratio, double? TorchStep);

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
        rows.AddRange(Measure("stories260K", storiesHf, storiesGguf, opt, [(1, opt.PromptTokens), (16, opt.PromptTokens)], warmUp: true, llamaTwoThreadsAtBatch16: true));

        if (!opt.SkipRandom)
        {
            string temp = Directory.CreateTempSubdirectory("finqlora-genbench-").FullName;
            try
            {
                var sw = Stopwatch.StartNew();
                var (folder, gguf, parameters) = WriteRandomModel(temp, storiesHf);
                Console.WriteLine($"random Llama: {parameters / 1e6:F1}M parameters, written as HF + GGUF in {sw.Elapsed.TotalSeconds:F1} s");
                // The stories runs already warmed both engines' code paths, so batch 16 has no warm-up round here; without
                // llama.cpp's 2-thread run at batch 16 (minutes, and erratic) the whole bench stays near four minutes.
                // Batch 1 also after a long prompt, where reading the KV cache and attention weigh on every token.
                rows.AddRange(Measure($"random-{parameters / 1e6:F0}M", folder, gguf, opt, [(1, opt.PromptTokens), (16, opt.PromptTokens), (1, opt.LongPromptTokens)],
                    warmUp: false, llamaTwoThreadsAtBatch16: false));
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
        int repeats = 3, threads = 2, prompt = 64, longPrompt = 1024, decode = 32;
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
                case "--long-prompt": longPrompt = NextInt(); break;
                case "--decode": decode = NextInt(); break;
                case "--skip-random": skipRandom = true; break;
                default: throw new UserInputException($"generate: unknown option '{args[i]}'; options: {Help}");
            }
        }
        return new Options(shared, repeats, threads, prompt, longPrompt, decode, skipRandom);
    }

    /// <summary>The folder holding FinQLoRA.slnx above the running binary (or the current directory).</summary>
    internal static string RepoRoot()
    {
        foreach (string start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
            for (var d = new DirectoryInfo(start); d != null; d = d.Parent)
                if (File.Exists(Path.Combine(d.FullName, "FinQLoRA.slnx"))) return d.FullName;
        return Directory.GetCurrentDirectory();
    }

    /// <summary>Runs one prefill of the prompts and <c>steps</c> greedy decode steps after it, once.</summary>
    internal delegate Timing Engine(int[][] prompts, int steps);

    /// <summary>Every column of one model's rows, measured in interleaved rounds: each round runs every engine once, in
    /// an order that reverses each round, so the drift of this shared machine's speed over a minute falls on every column
    /// alike instead of on whichever engine ran last. The ratio is the median of the rounds' own ratios.</summary>
    private static IEnumerable<Row> Measure(string name, string hfFolder, string gguf, Options opt, (int Batch, int Prompt)[] cases, bool warmUp, bool llamaTwoThreadsAtBatch16)
    {
        using var f32 = ModelLoading.LoadModel(hfFolder, new ModelLoadOptions { DType = ScalarType.Float32 });
        using var bf16 = ModelLoading.LoadModel(hfFolder, new ModelLoadOptions { DType = ScalarType.BFloat16 });
        using var llama = LLamaWeights.LoadFromFile(LlamaParams(gguf, 1, 1, opt.PromptTokens, opt.DecodeSteps));
        var rows = new List<Row>();
        foreach (var (batch, prompt) in cases)
        {
            var engines = new List<(string Column, Engine Run)>
            {
                (OursF32, (p, s) => Ours(f32, p, s, managedStep: true)),
                (OursBf16, (p, s) => Ours(bf16, p, s, managedStep: true)),
                (Llama1, (p, s) => LlamaCpp(llama, gguf, 1, p, s)),
            };
            // batch 1 also through libtorch alone, the baseline of the managed single-token step
            if (batch == 1) engines.Insert(1, (TorchStep, (p, s) => Ours(f32, p, s, managedStep: false)));
            if (batch == 1 || llamaTwoThreadsAtBatch16) engines.Add((Llama2, (p, s) => LlamaCpp(llama, gguf, 2, p, s)));
            // Batch 1 always starts with an untimed round (cheap, and it faults in both engines' weights).
            var runs = Interleaved($"{name} b{batch} prompt {prompt}", engines, Prompts(batch, prompt), opt.DecodeSteps, opt.Repeats, warmUp || batch == 1);

            double prefillTokens = batch * prompt, decodeTokens = batch * opt.DecodeSteps;
            Row RowOf(string phase, double tokens, Func<Timing, double> seconds)
            {
                double Rate(string column) => tokens / Mid(runs[column].Select(seconds));
                double? Optional(string column) => runs.ContainsKey(column) ? Rate(column) : null;
                var ratios = Enumerable.Range(0, runs[OursF32].Count).Select(r =>
                {
                    double llamaBest = Math.Max(tokens / seconds(runs[Llama1][r]), runs.TryGetValue(Llama2, out var l2) ? tokens / seconds(l2[r]) : 0);
                    return tokens / seconds(runs[OursF32][r]) / llamaBest;
                });
                return new Row(name, batch, prompt, phase, Rate(OursF32), Rate(OursBf16), Rate(Llama1), Optional(Llama2), Mid(ratios), Optional(TorchStep));
            }
            // the libtorch-step column is the managed decode step's baseline; prefill runs libtorch either way
            rows.Add(RowOf("prefill", prefillTokens, t => t.PrefillSeconds) with { TorchStep = null });
            rows.Add(RowOf("decode", decodeTokens, t => t.DecodeSeconds));
            Console.WriteLine($"  {name} batch {batch}, prompt {prompt} measured");
        }
        return rows;
    }

    private const string OursF32 = "ours fp32", OursBf16 = "ours bf16", TorchStep = "libtorch step", Llama1 = "llama.cpp 1t", Llama2 = "llama.cpp 2t";

    /// <summary>Each engine's timings of <paramref name="repeats"/> rounds (after an untimed warm-up round when asked).</summary>
    internal static Dictionary<string, List<Timing>> Interleaved(string what, List<(string Column, Engine Run)> engines, int[][] prompts, int steps, int repeats, bool warmUp)
    {
        var runs = engines.ToDictionary(e => e.Column, _ => new List<Timing>());
        var clock = Stopwatch.StartNew();
        for (int round = warmUp ? -1 : 0; round < repeats; round++)
        {
            var order = round % 2 == 0 ? engines : Enumerable.Reverse(engines).ToList();
            foreach (var (column, run) in order)
            {
                var t = run(prompts, steps);
                if (round >= 0) runs[column].Add(t);
            }
        }
        Console.WriteLine($"    {what}: {engines.Count} engines × {repeats} rounds in {clock.Elapsed.TotalSeconds:F1} s");
        return runs;
    }

    internal static double Mid(IEnumerable<double> xs)
    {
        var s = xs.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    /// <summary>BOS then pseudo-random merged-piece ids (259..511 exist in both models' 512-token vocab), a
    /// different sequence per row, so both engines see identical, non-trivial inputs.</summary>
    internal static int[][] Prompts(int batch, int length)
    {
        var rng = new Random(1234);
        return Enumerable.Range(0, batch)
            .Select(_ => Enumerable.Range(0, length).Select(i => i == 0 ? 1 : rng.Next(259, 512)).ToArray())
            .ToArray();
    }

    internal static Timing Ours(DecoderModel model, int[][] prompts, int steps, bool managedStep)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        int batch = prompts.Length, length = prompts[0].Length;
        using var cache = new KvCache(model.Config, batch, length + steps, model.ComputeDType, CPU);
        var ids = tensor(prompts.SelectMany(p => p).Select(i => (long)i).ToArray(), [batch, length], ScalarType.Int64);
        var sw = Stopwatch.StartNew();
        var logits = model.Forward(ids, null, cache, lastOnly: true);
        var next = logits.argmax(-1); // [B, 1]; argmax forces the lazy result like sampling would
        _ = next[0, 0].item<long>();
        double prefill = sw.Elapsed.TotalSeconds;
        var decode = DecodeStep.Choose(model, cache, allowManaged: managedStep);
        sw.Restart();
        for (int s = 0; s < steps; s++)
        {
            using var step = NewDisposeScope();
            logits = decode.Forward(next);
            next = logits.argmax(-1).MoveToOuterDisposeScope();
            _ = next[0, 0].item<long>();
        }
        return new Timing(prefill, sw.Elapsed.TotalSeconds);
    }

    /// <summary>llama.cpp's settings for one run: a context of the run's batch and length on <paramref name="threads"/>.</summary>
    internal static ModelParams LlamaParams(string gguf, int threads, int batch, int length, int steps) => new(gguf)
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

    internal static Timing LlamaCpp(LLamaWeights weights, string gguf, int threads, int[][] prompts, int steps)
    {
        int batch = prompts.Length, length = prompts[0].Length;
        int vocab = weights.Vocab.Count;
        using var ctx = weights.CreateContext(LlamaParams(gguf, threads, batch, length, steps));
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
        return new Timing(prefill, sw.Elapsed.TotalSeconds);
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
        var config = new ModelConfig
        {
            HiddenSize = 768, IntermediateSize = 2048, NumLayers = 12, NumHeads = 12, NumKvHeads = 4, HeadDim = 64,
            VocabSize = 512, MaxPositionEmbeddings = 2048, RmsNormEps = 1e-5, RopeTheta = 10000.0,
            TieWordEmbeddings = false, BosTokenId = 1, EosTokenIds = [2], TorchDtype = "float32",
        };
        string folder = Path.Combine(temp, "hf");
        RandomLlama.WriteHfFolder(config, folder, seed: 42);
        long parameters = ModelLayout.Tensors(config).Sum(t => t.Shape.Aggregate(1L, (x, y) => x * y));
        foreach (string file in new[] { "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json" })
            File.Copy(Path.Combine(tokenizerFolder, file), Path.Combine(folder, file));
        string gguf = Path.Combine(temp, "random.gguf");
        ModelConverter.HfToGguf(folder, gguf, null);
        return (folder, gguf, parameters);
    }

    private static void PrintTable(List<Row> rows, Options opt)
    {
        Console.WriteLine();
        Console.WriteLine($"tokens/s, median of {opt.Repeats} interleaved rounds (every engine once per round, the order reversed each round) after a warm-up round (random model at batch 16: none); {opt.DecodeSteps} greedy decode steps after the prompt; ours on {opt.Threads} torch thread(s)");
        Console.WriteLine("llama.cpp: F32 weights, F32 K/V cache, flash attention off; 1t/2t = threads; ratio = median over the rounds of ours fp32 / the faster llama.cpp column of the same round");
        Console.WriteLine("ours fp32 at batch 1 decodes with the managed single-token step; 'libtorch step' is the same model with it off");
        string header = $"| {"model",-12} | {"batch",5} | {"prompt",6} | {"phase",-7} | {"ours fp32",10} | {"libtorch step",13} | {"ours bf16",10} | {"llama.cpp 1t",12} | {"llama.cpp 2t",12} | {"ratio",6} |";
        Console.WriteLine(header);
        Console.WriteLine("|" + string.Join("|", header.Split('|')[1..^1].Select(c => new string('-', c.Length))) + "|");
        foreach (var r in rows)
        {
            Console.WriteLine($"| {r.Model,-12} | {r.Batch,5} | {r.Prompt,6} | {r.Phase,-7} | {r.OursF32,10:F0} | {(r.TorchStep is double ts ? ts.ToString("F0") : "-"),13} | {r.OursBf16,10:F0} | {r.Llama1,12:F0} | {(r.Llama2 is double l2 ? l2.ToString("F0") : "-"),12} | {r.Ratio,6:F2} |");
        }
    }
}
