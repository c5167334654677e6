using FinQLoRA.Loading;
using System.Diagnostics;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Demo;
using FinQLoRA.Distributed;
using FinQLoRA.Inference;
using FinQLoRA.Models;
using FinQLoRA.Runtime;
using FinQLoRA.Serving.Pipeline;
using TorchSharp;
using FinQLoRA.Serving;
using static TorchSharp.torch;

namespace FinQLoRA.Bench;

/// <summary>
/// Pipeline-parallel greedy generation (the engine over the stages) under <c>mpirun -np N</c>: generated tokens/s with
/// 1, 2 and 4 micro-batches per step against single-process generation on rank 0 with the same total number of threads, for stories260K and
/// a random ~100M Llama; and each stage's parameter bytes and resident memory. Pipeline runs come before the
/// baseline so that the memory figures are those of the stages alone.
/// </summary>
public static class PipelineBench
{
    public const string Help = "mpirun -np N: tok/s with 1/2/4 micro-batches vs one process, per-stage memory [--shared DIR] [--prompts N] [--new-tokens N] [--skip-random]";

    public static int Run(string[] args)
    {
        string shared = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "..", "..", "shared"));
        int promptCount = 8, newTokens = 32;
        bool skipRandom = false;
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new UserInputException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--shared": shared = Next(); break;
                case "--prompts": promptCount = int.Parse(Next()); break;
                case "--new-tokens": newTokens = int.Parse(Next()); break;
                case "--skip-random": skipRandom = true; break;
                default: throw new UserInputException($"unknown option {args[i]}; {Help}");
            }
        }
        using var context = DistributedContext.FromEnvironment();
        if (context.Size < 2) throw new UserInputException("run the pipeline bench under mpirun -np 2 (or more)");
        var comm = context.Communicator;
        int threadsPerRank = torch.get_num_threads();
        if (context.IsMain) Console.WriteLine($"{context.Size} stages, {threadsPerRank} thread(s) per rank; baseline: one process with {threadsPerRank * context.Size}");

        string stories = Path.Combine(shared, "models", "stories260K-hf");
        Measure(context, "stories260K", stories, ModelLoading.LoadTokenizer(stories), promptCount, newTokens, threadsPerRank);
        if (!skipRandom)
        {
            // Every rank agrees on the folder without sending strings: the same name, written by rank 0 before a barrier.
            string folder = Path.Combine(Path.GetTempPath(), "finqlora-pipebench-random100M-seed7");
            if (context.IsMain && !File.Exists(Path.Combine(folder, "config.json")))
                RandomLlama.WriteHfFolder(RandomConfig, folder, seed: 7, ScalarType.BFloat16);
            comm.Barrier();
            try { Measure(context, "random-100M", folder, DemoTokenizer.Create(), promptCount, newTokens, threadsPerRank); }
            finally
            {
                comm.Barrier();
                if (context.IsMain) Directory.Delete(folder, recursive: true);
            }
        }
        return 0;
    }

    private static readonly ModelConfig RandomConfig = new()
    {
        HiddenSize = 512, IntermediateSize = 1536, NumLayers = 16, NumHeads = 8, NumKvHeads = 4, HeadDim = 64,
        VocabSize = 50304, MaxPositionEmbeddings = 512, BosTokenId = DemoTokenizer.EndOfText, EosTokenIds = [],
    };

    private static void Measure(DistributedContext context, string name, string folder, ITextTokenizer tokenizer, int promptCount, int newTokens, int threadsPerRank)
    {
        var comm = context.Communicator;
        // Prompts of 8..36 tokens; no stop ids, so every sequence generates exactly newTokens.
        var prompts = Enumerable.Range(0, promptCount).Select(i => Enumerable.Range(0, 8 + 4 * (i % 8)).Select(j => 3 + (i * 31 + j * 7) % 200).ToArray()).ToList();
        var options = new GenerationOptions { MaxNewTokens = newTokens, StopIds = [] };
        var load = new ModelLoadOptions { DType = ScalarType.Float32 };
        var (model, plan) = PipelineServingStage.Load(folder, load, comm.Size, comm.Rank, []);
        var rates = new List<(int M, double TokensPerSecond)>();
        using (model)
        {
            var generator = new PipelineGenerator(model, comm, new NoStopTokenizer(tokenizer));
            generator.GenerateIds(context.IsMain ? prompts : [], options with { MaxNewTokens = 2 }, promptCount, 1); // warm-up
            foreach (int m in new[] { 1, 2, 4 })
            {
                comm.Barrier();
                var clock = Stopwatch.StartNew();
                var results = generator.GenerateIds(context.IsMain ? prompts : [], options, promptCount, m);
                if (context.IsMain) rates.Add((m, results.Sum(r => r.OutputIds.Length) / clock.Elapsed.TotalSeconds));
            }
            long parameterBytes = model.parameters().Sum(p => p.numel() * p.element_size());
            using var mine = tensor(new long[] { parameterBytes, MemoryUsage.CurrentRssBytes, MemoryUsage.PeakRssBytes });
            using var all = zeros(3L * comm.Size, ScalarType.Int64);
            comm.AllGather(mine, all);
            if (context.IsMain)
            {
                long[] v = all.data<long>().ToArray();
                Console.WriteLine($"\n{name}: {plan}");
                for (int r = 0; r < comm.Size; r++)
                    Console.WriteLine($"  rank {r}: parameters {MemoryUsage.Format(v[3 * r])}, RSS {MemoryUsage.Format(v[3 * r + 1])} (peak {MemoryUsage.Format(v[3 * r + 2])})");
            }
        }

        if (context.IsMain)
        {
            torch.set_num_threads(threadsPerRank * comm.Size);
            using var full = ModelLoading.LoadModel(folder, load);
            var single = new TextGenerator(full, new NoStopTokenizer(tokenizer));
            single.GenerateIds(prompts, options with { MaxNewTokens = 2 }, promptCount); // warm-up
            var clock = Stopwatch.StartNew();
            var results = single.GenerateIds(prompts, options, promptCount);
            double baseline = results.Sum(r => r.OutputIds.Length) / clock.Elapsed.TotalSeconds;
            torch.set_num_threads(threadsPerRank);
            Console.WriteLine($"  single process: {baseline,8:F1} tok/s (batch {promptCount}, {newTokens} new tokens, fp32)");
            foreach (var (m, rate) in rates)
                Console.WriteLine($"  pipeline M={m}:  {rate,8:F1} tok/s  ×{rate / baseline:F2}");
        }
        comm.Barrier();
    }

    /// <summary>The model's tokenizer without EOS ids, so every sequence runs the full length and runs compare.</summary>
    private sealed class NoStopTokenizer(ITextTokenizer inner) : ITextTokenizer
    {
        public int VocabSize => inner.VocabSize;
        public int? BosId => inner.BosId;
        public IReadOnlyList<int> EosIds => [];
        public int PadId => inner.PadId;
        public bool AddsBosByDefault => inner.AddsBosByDefault;
        public int[] Encode(string text, bool addBos) => inner.Encode(text, addBos);
        public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true) => inner.Decode(ids, skipSpecialTokens);
        public int? TokenToId(string token) => inner.TokenToId(token);
    }
}
