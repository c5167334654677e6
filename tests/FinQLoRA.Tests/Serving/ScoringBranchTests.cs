using FinQLoRA.Adapters;
using FinQLoRA.Data.Tasks;
using FinQLoRA.Evaluation;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Serving;
using FinQLoRA.Tests.Support;
using static FinQLoRA.Tests.Serving.EngineTestKit;

namespace FinQLoRA.Tests.Serving;

/// <summary>
/// Scoring branches (<see cref="EngineRequest.ScoreBranches"/>): a question's multi-token labels fed side by side after
/// its prompt in one row, under a tree mask, give each label the log-likelihood <see cref="ChoiceScorer"/> gives it
/// from a plain forward of prompt + label — alone, with a prefix-cache hit, in a batch beside rows of other offsets
/// and adapters, through a chunked prefill, and on families whose sliding window (6 positions here) is shorter than
/// the labels' reach, where each branch must see its own window and not its siblings'.
/// </summary>
public sealed class ScoringBranchTests
{
    private const int Block = 4;

    [Theory]
    [InlineData("stories")]
    [InlineData("mistral")]
    [InlineData("gemma2")]
    public void BranchesScoreEachLabelAsAPlainForwardDoes(string family)
    {
        using var dir = new TempFolder();
        var (model, tokenizer) = LoadWithAdapter(family, dir.Path);
        using var _ = model;
        string context = "Once upon a time there was a little dog who liked the park. Was the dog happy? Answer:";
        string[] labels = [" yes", " no", " the dog was very happy indeed", " maybe not today"];
        var rows = labels.Select(l => ChoiceScorer.Continuation(tokenizer, context, l, tokenizer.AddsBosByDefault)).ToList();
        int length = rows[0].PromptLength;
        Assert.All(rows, r => Assert.Equal(rows[0].InputIds[..length], r.InputIds[..length]));
        int[] prompt = rows[0].InputIds[..length];
        int[][] branches = rows.Select(r => r.InputIds[length..]).ToArray();
        Assert.Contains(branches, b => b.Length > SeededFamilies.Window); // a branch reaches past the window

        string?[] adapters = [null, "a"];
        var expected = new Dictionary<string, double[]>();
        foreach (var a in adapters)
        {
            LoraInjector.SetActiveAdapter(model, a);
            expected[a ?? ""] = ChoiceScorer.Score(model, tokenizer, [new Example(context, "")], labels, batchSize: 4)[0];
        }
        LoraInjector.SetActiveAdapter(model, null);
        EngineRequest Question(string? adapter) => new(prompt, adapter, new SamplingParams()) { ScoreFrom = prompt.Length, ScoreBranches = branches };
        void AssertScores(EngineCompletion result, string? adapter, string what)
        {
            Assert.Equal(labels.Length, result.BranchScores!.Count);
            for (int i = 0; i < labels.Length; i++)
                Assert.True(Math.Abs(result.BranchScores[i] - expected[adapter ?? ""][i]) < 1e-4,
                    $"{family} {what}, adapter {adapter ?? "none"}, label '{labels[i]}': {result.BranchScores[i]} vs {expected[adapter ?? ""][i]}");
        }

        using (var plain = new ServingEngine(model, tokenizer, new EngineOptions { MaxBatch = 8, MaxModelLen = 128 }))
            foreach (var a in adapters) AssertScores(Run(plain, Question(a)), a, "alone");

        long blockBytes = 2L * model.Config.NumLayers * model.Config.NumKvHeads * Block * model.Config.HeadDim * sizeof(float);
        foreach (int budget in new[] { 1024, 7 }) // 7: the prompt is prefilled in chunks, the branches with the last one
        {
            using var engine = new ServingEngine(model, tokenizer, new EngineOptions
            {
                MaxBatch = 8, MaxModelLen = 128, PrefillTokensPerStep = budget, PrefixCacheBytes = 64 * blockBytes, PrefixBlockTokens = Block,
            });
            // half the prompt in the cache first, so the question rows start from a hit of another length than the
            // generating row beside them
            Run(engine, new EngineRequest(prompt[..(length / 2)], null, new SamplingParams()) { ScoreFrom = length / 2 });
            var generating = new EngineRequest([.. prompt[..5], 7, 9, 11], "a", new SamplingParams { MaxTokens = 4 });
            var results = RunTogether(engine, [Question(null), Question("a"), generating]);
            Assert.True(results[0].CachedTokens > 0);
            AssertScores(results[0], null, $"with a hit, budget {budget}");
            AssertScores(results[1], "a", $"with a hit, budget {budget}");
            Assert.Equal(4, results[2].CompletionTokens);
        }
    }

    [Fact]
    public void BranchesAreCheckedBeforeTheyRun()
    {
        var tokenizer = ModelLoading.LoadTokenizer(SeededLlama.Folder);
        using var model = SeededLlama.Load();
        using var engine = new ServingEngine(model, tokenizer, new EngineOptions { MaxBatch = 2, MaxModelLen = 16 });
        int[] prompt = [1, 5, 6, 7];
        ServingException Refused(EngineRequest r) => Assert.Throws<ServingException>(() => engine.Submit(r));
        Refused(new EngineRequest(prompt, null, new SamplingParams()) { ScoreFrom = 3, ScoreBranches = [[8]] });          // not after the whole prompt
        Refused(new EngineRequest(prompt, null, new SamplingParams()) { ScoreFrom = 4, ScoreBranches = [[]] });           // an empty branch
        Refused(new EngineRequest(prompt, null, new SamplingParams()) { ScoreFrom = 4, ScoreBranches = [[9999]] });       // outside the vocabulary
        Assert.Equal(ServingErrorKind.ContextLength,
            Refused(new EngineRequest(prompt, null, new SamplingParams()) { ScoreFrom = 4, ScoreBranches = [Enumerable.Repeat(8, 8).ToArray(), Enumerable.Repeat(9, 8).ToArray()] }).Kind);
        Refused(new EngineRequest(prompt, null, new SamplingParams { MaxTokens = 2 }) { ScoreBranches = [[8]] });         // a generation row
    }
}
