using FinQLoRA.Loading;
using System.Diagnostics;
using System.Globalization;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Demo;
using FinQLoRA.Distributed;
using FinQLoRA.Inference;
using FinQLoRA.Models;
using FinQLoRA.Runtime;
using FinQLoRA.Serving.Pipeline;
using TorchSharp;

namespace FinQLoRA.MpiHost;

/// <summary>
/// Pipeline-parallel greedy generation (the serving engine over the stages), one stage per rank. Arguments: model folder, dtype (f32|bf16), new tokens,
/// micro-batch counts (comma-separated, each run in turn on the same loaded stages), prompts as ids ("1,2,3;1,4").
/// Rank 0 prints "ids-m&lt;M&gt; row0|row1|…" per micro-batch count; every rank prints its stage and memory.
/// A folder without tokenizer.json gets the demo's GPT-2 tokenizer (EOS 50256), as the random test models do.
/// </summary>
internal static class PipelineScenarios
{
    public static void Run(ICommunicator comm, string[] args)
    {
        string folder = args[0];
        var dtype = args[1] == "bf16" ? torch.ScalarType.BFloat16 : torch.ScalarType.Float32;
        int newTokens = int.Parse(args[2], CultureInfo.InvariantCulture);
        int[] microBatchCounts = args[3].Split(',').Select(v => int.Parse(v, CultureInfo.InvariantCulture)).ToArray();
        var prompts = args[4].Split(';').Select(p => p.Split(',').Select(v => int.Parse(v, CultureInfo.InvariantCulture)).ToArray()).ToList();

        ITextTokenizer tokenizer = File.Exists(Path.Combine(folder, "tokenizer.json")) ? ModelLoading.LoadTokenizer(folder) : DemoTokenizer.Create();
        var (model, plan) = PipelineServingStage.Load(folder, new ModelLoadOptions { DType = dtype }, comm.Size, comm.Rank, []);
        using (model)
        {
            var stage = plan.Stages[comm.Rank];
            long parameterBytes = model.parameters().Sum(p => p.numel() * p.element_size());
            Report.Line(comm.Rank, "stage", $"{stage.FirstLayer},{stage.LayerCount},{(stage.HoldsEmbeddings ? 1 : 0)},{(stage.HoldsHead ? 1 : 0)}");
            Report.Line(comm.Rank, "param-bytes", parameterBytes.ToString(CultureInfo.InvariantCulture));
            var generator = new PipelineGenerator(model, comm, tokenizer);
            var options = new GenerationOptions { MaxNewTokens = newTokens };
            foreach (int m in microBatchCounts)
            {
                var clock = Stopwatch.StartNew();
                var results = generator.GenerateIds(comm.Rank == 0 ? prompts : [], options, batchSize: prompts.Count, microBatches: m);
                double seconds = clock.Elapsed.TotalSeconds;
                if (comm.Rank != 0) continue;
                Report.Line(0, $"ids-m{m}", string.Join("|", results.Select(r => string.Join(",", r.OutputIds))));
                Report.Line(0, $"finish-m{m}", string.Join("|", results.Select(r => r.FinishReason)));
                Report.Line(0, $"tokens-per-s-m{m}", (results.Sum(r => r.OutputIds.Length) / seconds).ToString("F1", CultureInfo.InvariantCulture));
            }
            Report.Line(comm.Rank, "rss", MemoryUsage.CurrentRssBytes.ToString(CultureInfo.InvariantCulture));
        }
    }
}
