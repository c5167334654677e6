using FinQLoRA.Models.Families;
using FinQLoRA.Inference.Pipeline;
using FinQLoRA.Models;
using FinQLoRA.Tests.Support;
using FinQLoRA.Loading;

namespace FinQLoRA.Tests.Distributed;

public sealed class PipelinePlannerTests
{
    private static ModelConfig Llama8B => ModelPresets.Get("llama-3.1-8b")!;
    private static ModelConfig Llama70B => ModelPresets.Get("llama-3.1-70b")!;

    [Fact]
    public void Llama8BStagesAddUpToTheModelsPublishedParameterCount()
    {
        // Meta-Llama-3.1-8B: 8,030,261,248 parameters (embeddings and lm_head untied).
        foreach (int n in new[] { 1, 2, 4, 8 })
            Assert.Equal(8_030_261_248, PipelinePlanner.Plan(Llama8B, n).Stages.Sum(s => s.ParameterCount));
    }

    [Fact]
    public void Llama70BStagesAddUpToTheModelsPublishedParameterCount()
    {
        // Meta-Llama-3.1-70B: 70,553,706,496 parameters.
        Assert.Equal(70_553_706_496, PipelinePlanner.Plan(Llama70B, 8).Stages.Sum(s => s.ParameterCount));
    }

    [Theory]
    [InlineData("llama-3.1-8b", 2)]
    [InlineData("llama-3.1-8b", 3)]
    [InlineData("llama-3.1-8b", 4)]
    [InlineData("llama-3.1-70b", 2)]
    [InlineData("llama-3.1-70b", 3)]
    public void LargestStageIsAsSmallAsAnyContiguousSplitAllows(string preset, int n)
    {
        var config = ModelPresets.Get(preset)!;
        var plan = PipelinePlanner.Plan(config, n);
        AssertCoversAllLayersInOrder(plan, config.NumLayers);
        Assert.Equal(BruteForceLargestStage(config, n), plan.Stages.Max(s => s.ParameterCount));
    }

    [Fact]
    public void EmbeddingsAndHeadCostTheFirstStagesLayers()
    {
        // 70B: the 128256 × 8192 embedding and the head (1.05 B each) weigh about 2.4 decoder layers (0.86 B each), and
        // both sit on the first stage (rank 0 embeds and samples), so with 8 stages it takes fewer layers than the middle ones.
        var plan = PipelinePlanner.Plan(Llama70B, 8);
        AssertCoversAllLayersInOrder(plan, 80);
        Assert.True(plan.First.HoldsEmbeddings && plan.First.HoldsHead);
        Assert.All(plan.Stages.Skip(1), s => Assert.False(s.HoldsEmbeddings || s.HoldsHead));
        Assert.True(plan.First.LayerCount < plan.Stages[1].LayerCount, plan.ToString());
        // No stage exceeds the ideal share by more than one layer.
        double mean = plan.Stages.Average(s => (double)s.ParameterCount);
        Assert.True(plan.Stages.Max(s => s.ParameterCount) <= mean + PipelinePlanner.LayerParameters(Llama70B), plan.ToString());
    }

    [Fact]
    public void Stories260KSplitsFiveLayersTwoAndThree()
    {
        var config = ModelConfig.Load(SeededLlama.Folder); // stories260K's shapes, as its config.json gives them
        // layer: 64·64·2 + 64·32·2 + 3·64·172 + 2·64 = 45,440; embeddings 512·64 = 32,768; norm + lm_head 32,832, all on
        // the first stage.
        Assert.Equal(45_440, PipelinePlanner.LayerParameters(config));
        var two = PipelinePlanner.Plan(config, 2);
        Assert.Equal([(0, 2, 2 * 45_440L + 32_768 + 32_832), (2, 3, 3 * 45_440L)],
            two.Stages.Select(s => (s.FirstLayer, s.LayerCount, s.ParameterCount)));
        for (int n = 1; n <= 5; n++)
        {
            var plan = PipelinePlanner.Plan(config, n);
            AssertCoversAllLayersInOrder(plan, 5);
            Assert.Equal(BruteForceLargestStage(config, n), plan.Stages.Max(s => s.ParameterCount));
        }
    }

    [Fact]
    public void ATiedMatrixIsHeldOnce()
    {
        var tied = Llama8B with { TieWordEmbeddings = true };
        long embed = 128256L * 4096;
        var one = PipelinePlanner.Plan(tied, 1).Stages.Single();
        Assert.True(one.HoldsEmbeddings && one.HoldsHead);
        Assert.Equal(8_030_261_248 - embed, one.ParameterCount);
        // Split, the first stage holds the embeddings and the head, which are one matrix.
        Assert.Equal(8_030_261_248 - embed, PipelinePlanner.Plan(tied, 2).Stages.Sum(s => s.ParameterCount));
        foreach (int n in new[] { 2, 3, 4 })
            Assert.Equal(BruteForceLargestStage(tied, n), PipelinePlanner.Plan(tied, n).Stages.Max(s => s.ParameterCount));
    }

    [Fact]
    public void MoreStagesThanLayersIsAUserError()
    {
        var e = Assert.Throws<UserInputException>(() => PipelinePlanner.Plan(Llama8B, 33));
        Assert.Contains("32 decoder layers", e.Message);
        Assert.Throws<UserInputException>(() => PipelinePlanner.Plan(Llama8B, 0));
    }

    [Fact]
    public void RestrictLoadsOnlyTheStagesPieces()
    {
        var plan = PipelinePlanner.Plan(Llama8B, 4);
        var middle = plan.Stages[1].Restrict(new ModelLoadOptions());
        Assert.Equal((plan.Stages[1].FirstLayer, plan.Stages[1].LayerCount), middle.LayerRange);
        Assert.False(middle.LoadEmbeddings);
        Assert.False(middle.LoadHead);
        Assert.True(plan.First.Restrict(new ModelLoadOptions()).LoadEmbeddings);
        Assert.True(plan.First.Restrict(new ModelLoadOptions()).LoadHead);
        Assert.False(plan.Last.Restrict(new ModelLoadOptions()).LoadHead || plan.Last.Restrict(new ModelLoadOptions()).LoadEmbeddings);
    }

    private static void AssertCoversAllLayersInOrder(PipelinePlan plan, int layers)
    {
        int next = 0;
        for (int s = 0; s < plan.Count; s++)
        {
            Assert.Equal(s, plan.Stages[s].Index);
            Assert.Equal(next, plan.Stages[s].FirstLayer);
            Assert.True(plan.Stages[s].LayerCount >= 1);
            next = plan.Stages[s].EndLayer;
        }
        Assert.Equal(layers, next);
    }

    /// <summary>The smallest largest-stage cost over every way of cutting the layers into n non-empty runs.</summary>
    private static long BruteForceLargestStage(ModelConfig c, int n)
    {
        long layer = PipelinePlanner.LayerParameters(c), embed = (long)c.VocabSize * c.HiddenSize, head = embed + c.HiddenSize;
        long Best(int stage, int start)
        {
            int remaining = n - stage;
            // the first stage holds the embeddings, the final norm and the head (a tied head is the embedding matrix)
            long extra = stage == 0 ? embed + head - (c.TieWordEmbeddings ? embed : 0) : 0;
            if (remaining == 1) return (c.NumLayers - start) * layer + extra;
            long best = long.MaxValue;
            for (int end = start + 1; end <= c.NumLayers - (remaining - 1); end++)
                best = Math.Min(best, Math.Max((end - start) * layer + extra, Best(stage + 1, end)));
            return best;
        }
        return Best(0, 0);
    }
}
