using System.Diagnostics;
using FinQLoRA.Demo;
using FinQLoRA.Distributed;
using FinQLoRA.Inference.Pipeline;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Runtime;
using FinQLoRA.Server;
using FinQLoRA.Serving;
using FinQLoRA.Serving.Pipeline;
using static TorchSharp.torch;

namespace FinQLoRA.Bench;

/// <summary>
/// <c>bench serve --pipeline-stages N</c> under <c>mpirun -np N</c>: served tokens/s at 16 greedy streams over loopback
/// HTTP with the model's layers split over N ranks (rank 0 serving, one thread per rank) against the same model served
/// by one process on rank 0 with as many threads as the ranks had together, both in this run; and each rank's memory
/// (parameters, KV slots, resident set) against the planner's figure for its stage (<see cref="PipelinePlanner"/>'s
/// parameters at the run's dtype, plus the slots of its layers). The pipeline runs first, so that the memory figures
/// are the stages' alone.
/// </summary>
public static class ServePipelineBench
{
    private const int Streams = 16;
    private static readonly EngineOptions Sizes = new() { MaxBatch = 32, MaxModelLen = 256 };

    public static int Run(int stages, int? microBatches, string stories, bool quick)
    {
        using var job = DistributedContext.FromEnvironment();
        if (job.Size != stages)
            throw new UserInputException($"--pipeline-stages {stages} needs a job of {stages} ranks but this one has {job.Size}; run: mpirun -np {stages} dotnet FinQLoRA.Bench.dll serve --pipeline-stages {stages}");
        var comm = job.Communicator;
        int tokens = quick ? 12 : 32, threadsPerRank = get_num_threads();
        var config = new ModelConfig
        {
            HiddenSize = 768, IntermediateSize = 2048, NumLayers = 12, NumHeads = 12, NumKvHeads = 4, HeadDim = 64,
            VocabSize = 512, MaxPositionEmbeddings = 2048, BosTokenId = 1, EosTokenIds = [2],
        };
        // Every rank agrees on the folder without sending strings: the same name, written by rank 0 before a barrier.
        string folder = Path.Combine(Path.GetTempPath(), "finqlora-servebench-pipeline-random76M-seed42");
        // Deleted at the end only when this run made it: a folder already there (an earlier run's, or anyone's) stays.
        bool created = job.IsMain && !Directory.Exists(folder);
        if (job.IsMain && !File.Exists(Path.Combine(folder, "config.json")))
        {
            RandomLlama.WriteHfFolder(config, folder, seed: 42);
            foreach (string file in new[] { "tokenizer.json", "tokenizer_config.json" }) File.Copy(Path.Combine(stories, file), Path.Combine(folder, file));
        }
        comm.Barrier();
        try
        {
            var load = new ModelLoadOptions { DType = ScalarType.Float32 };
            var prompts = Enumerable.Range(0, 32).Select(i => ServeBench.Starts[i % ServeBench.Starts.Length] + $" {i}").ToArray();
            int m = microBatches ?? stages;

            // The pipeline: rank 0 serves, the others run their stage.
            var (stage, plan) = PipelineServingStage.Load(folder, load, stages, job.Rank, []);
            long kvBytes;
            ServeBench.Measured? piped = null;
            using (stage)
            {
                if (job.IsMain)
                {
                    var tokenizer = ModelLoading.LoadTokenizer(folder);
                    var metrics = new ServerMetrics("random-76M");
                    using var engine = ServingEngine.OverPipeline(stage, tokenizer, Sizes, comm, m, metrics);
                    piped = Serve(engine, metrics, prompts, tokens).GetAwaiter().GetResult();
                    kvBytes = engine.KvCacheBytes;
                }
                else
                {
                    var worker = new PipelineStageWorker(stage, comm);
                    worker.Run();
                    kvBytes = worker.KvCacheBytes;
                }
                long parameterBytes = stage.parameters().Sum(p => p.numel() * p.element_size());
                using var mine = tensor(new long[] { parameterBytes, kvBytes, MemoryUsage.CurrentRssBytes, MemoryUsage.PeakRssBytes });
                using var all = zeros(4L * comm.Size, ScalarType.Int64);
                comm.AllGather(mine, all);
                if (job.IsMain) Report(plan, config, all.data<long>().ToArray(), stages, m, threadsPerRank);
            }

            // The baseline: one process on rank 0 with every rank's threads.
            if (job.IsMain)
            {
                set_num_threads(threadsPerRank * stages);
                var tokenizer = ModelLoading.LoadTokenizer(folder);
                using var whole = ModelLoading.LoadModel(folder, load);
                var metrics = new ServerMetrics("random-76M");
                using var engine = new ServingEngine(whole, tokenizer, Sizes, metrics);
                var single = Serve(engine, metrics, prompts, tokens).GetAwaiter().GetResult();
                Console.WriteLine($"  {Streams} streams, {tokens} new tokens each, f32, greedy (medians of 3):");
                Console.WriteLine($"  one process ({threadsPerRank * stages} threads):   {single.TokensPerSecond,8:F1} tok/s, TTFT p50 {single.TtftP50 * 1000:F0} ms");
                Console.WriteLine($"  {stages} stages, M={m} ({threadsPerRank} thread/rank): {piped!.TokensPerSecond,8:F1} tok/s, TTFT p50 {piped.TtftP50 * 1000:F0} ms  = {piped.TokensPerSecond / single.TokensPerSecond:F2}x");
                set_num_threads(threadsPerRank);
            }
            comm.Barrier();
        }
        finally
        {
            // the folder this run created under the temp directory, holding only the model it wrote, after every rank is done with it
            if (created) Directory.Delete(folder, recursive: true);
        }
        return 0;
    }

    /// <summary>Serves <paramref name="engine"/> on a free loopback port: a warm-up, then the median of three runs of 16 streams.</summary>
    private static async Task<ServeBench.Measured> Serve(ServingEngine engine, ServerMetrics metrics, string[] prompts, int tokens)
    {
        const string name = "random-76M";
        await using var server = OpenAiServer.Create(engine, new ServerOptions { ServedModelName = name, Port = 0 }, metrics);
        await server.StartAsync();
        using var http = new HttpClient { BaseAddress = server.Url, Timeout = TimeSpan.FromMinutes(10) };
        await ServeBench.Clients(http, prompts, [name], 2, 1, 4);
        var three = new List<ServeBench.Measured>();
        for (int i = 0; i < 3; i++) three.Add(await ServeBench.Clients(http, prompts, [name], Streams, 1, tokens));
        await server.StopAsync();
        return three.OrderBy(r => r.TokensPerSecond).ElementAt(1);
    }

    private static void Report(PipelinePlan plan, ModelConfig c, long[] v, int stages, int m, int threadsPerRank)
    {
        Console.WriteLine($"random-76M served across {stages} ranks, M={m}: {plan}");
        Console.WriteLine($"  {"rank",4} {"planner: params",15} {"params",10} {"planner: KV",12} {"KV slots",10} {"RSS",10} {"peak RSS",10}");
        for (int r = 0; r < stages; r++)
        {
            var s = plan.Stages[r];
            long plannedKv = 2L * s.LayerCount * Sizes.MaxBatch * Sizes.MaxModelLen * c.NumKvHeads * c.HeadDim * 4;
            Console.WriteLine($"  {r,4} {MemoryUsage.Format(s.ParameterCount * 4),15} {MemoryUsage.Format(v[4 * r]),10} {MemoryUsage.Format(plannedKv),12} {MemoryUsage.Format(v[4 * r + 1]),10} {MemoryUsage.Format(v[4 * r + 2]),10} {MemoryUsage.Format(v[4 * r + 3]),10}");
        }
        Console.WriteLine("  (the final norm and head are on rank 0, which samples, and the planner weighs them there; the other stages keep a placeholder norm)");
    }
}
