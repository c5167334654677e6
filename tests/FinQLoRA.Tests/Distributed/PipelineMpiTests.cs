using FinQLoRA.Loading;
using FinQLoRA.Demo;
using FinQLoRA.Inference;
using FinQLoRA.Inference.Pipeline;
using FinQLoRA.Models;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Distributed;

/// <summary>A seeded Llama with stories260K's shapes (fp32) split over 2 ranks: layers 0-1 + embeddings + head on
/// rank 0 (it samples), layers 2-4 on rank 1.</summary>
public sealed class Stories260KShapesPipelineJob
{
    public static string Folder => SeededLlama.Folder;

    private readonly Lazy<PipelineJob> _job = new(() =>
    {
        var tokenizer = ModelLoading.LoadTokenizer(Folder);
        // Five prompts of different lengths: micro-batches of 2+2+1 or 2+1+1+1 rows are padded differently from
        // the single batch of the reference, and some sequences end on EOS before others.
        string[] texts = ["Once upon a time", "Lily", "The little dog ran to the park and saw a big", "One day, a boy named Tom", "Sam"];
        return PipelineJob.Run(Folder, tokenizer, texts.Select(t => tokenizer.Encode(t, addBos: true)).ToList(), newTokens: 40);
    });

    public PipelineJob Job => _job.Value;
}

/// <summary>A random ~100M-parameter Llama (GPT-2 vocabulary, 16 layers) written to a temporary folder.</summary>
public sealed class RandomPipelineJob : IDisposable
{
    public static readonly ModelConfig Config = new()
    {
        HiddenSize = 512, IntermediateSize = 1536, NumLayers = 16, NumHeads = 8, NumKvHeads = 4, HeadDim = 64,
        VocabSize = 50304, MaxPositionEmbeddings = 256, BosTokenId = DemoTokenizer.EndOfText, EosTokenIds = [DemoTokenizer.EndOfText],
    };

    private readonly string _folder = Path.Combine(Path.GetTempPath(), $"finqlora-pipeline-{Guid.NewGuid():N}");
    private readonly Lazy<PipelineJob> _job;

    public RandomPipelineJob()
    {
        _job = new(() =>
        {
            // Stored in bf16 (half the bytes to write and read), computed in fp32 on both sides.
            RandomLlama.WriteHfFolder(Config, _folder, seed: 7, TorchSharp.torch.ScalarType.BFloat16);
            int[][] prompts = [[50256, 464, 3290, 318], [50256, 40, 588, 257, 922, 1110, 290, 1309, 502], [50256, 15496], [50256, 818, 262, 3726, 612, 373, 257]];
            return PipelineJob.Run(_folder, DemoTokenizer.Create(), prompts, newTokens: 8);
        });
    }

    public PipelineJob Job => _job.Value;

    public void Dispose()
    {
        if (Directory.Exists(_folder)) Directory.Delete(_folder, recursive: true);
    }
}

[Collection(MpiCollection.Name)]
public sealed class Stories260KShapesPipelineMpiTests(Stories260KShapesPipelineJob fixture) : IClassFixture<Stories260KShapesPipelineJob>
{
    [MpiFact]
    public void GreedyIdsMatchSingleProcessWithOneTwoAndFourMicroBatches() => fixture.Job.AssertMatchesReference();

    [MpiFact]
    public void EachRankHoldsOnlyItsStage()
    {
        var job = fixture.Job.Finished;
        var config = ModelConfig.Load(Stories260KShapesPipelineJob.Folder);
        var plan = PipelinePlanner.Plan(config, 2);
        Assert.Equal("0,2,1,1", job.Text(0, "stage"));
        Assert.Equal("2,3,0,0", job.Text(1, "stage"));
        // fp32: 4 bytes a parameter; a stage without the head still carries a [hidden] placeholder final norm.
        Assert.Equal(plan.First.ParameterCount * 4, long.Parse(job.Text(0, "param-bytes")));
        Assert.Equal((plan.Last.ParameterCount + config.HiddenSize) * 4, long.Parse(job.Text(1, "param-bytes")));
    }
}

[Collection(MpiCollection.Name)]
public sealed class RandomModelPipelineMpiTests(RandomPipelineJob fixture) : IClassFixture<RandomPipelineJob>
{
    [MpiFact]
    public void GreedyIdsMatchSingleProcessOnA100MModel()
    {
        var plan = PipelinePlanner.Plan(RandomPipelineJob.Config, 2);
        Assert.InRange(plan.Stages.Sum(s => s.ParameterCount), 90_000_000, 110_000_000);
        fixture.Job.AssertMatchesReference();
        // Each rank holds about half of the weights.
        foreach (int rank in new[] { 0, 1 })
            Assert.InRange(long.Parse(fixture.Job.Finished.Text(rank, "param-bytes")), 0.4 * 4 * 101e6, 0.6 * 4 * 101e6);
    }
}
