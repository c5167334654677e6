using FinQLoRA.Adapters;
using FinQLoRA.Data.Tasks;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Evaluation;
using FinQLoRA.Inference;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Serving;
using FinQLoRA.Tests.Adapters;
using FinQLoRA.Tests.Support;
using static FinQLoRA.Tests.Serving.EngineTestKit;

namespace FinQLoRA.Tests.Serving;

/// <summary>
/// Automatic prefix caching in the engine (f32): a hit is counted in whole blocks and leaves at least the last prompt
/// token to compute; outputs with hits (rows of different hit lengths in one prefill, chunked prefills starting at the
/// hit, adapters, a sliding-window family) equal those of an engine without the cache; the pool drops its least
/// recently used blocks; partitions, adapters and reloaded adapters never share; scoring rows equal
/// <see cref="ChoiceScorer"/> with and without hits.
/// </summary>
public sealed class PrefixCacheTests
{
    private const int Block = 4;

    /// <summary>Seeded ids after BOS (1), within the vocabulary.</summary>
    private static int[] Ids(int count, int seed, int vocab) =>
        [1, .. Enumerable.Range(0, count - 1).Select(i => 3 + (i * 37 + seed * 101) % (vocab - 3))];

    private static long BlockBytes(ModelConfig c) => 2L * c.NumLayers * c.NumKvHeads * Block * c.HeadDim * sizeof(float);

    private static EngineOptions Cached(ModelConfig c, int blocks, int budget = 1024) => new()
    {
        MaxBatch = 12, MaxModelLen = 128, PrefillTokensPerStep = budget, PrefixCacheBytes = blocks * BlockBytes(c), PrefixBlockTokens = Block,
    };

    private static void AssertSameOutput(EngineCompletion expected, EngineCompletion actual, string what)
    {
        Assert.True(expected.TokenIds.SequenceEqual(actual.TokenIds), $"{what}: tokens {string.Join(",", actual.TokenIds)} != {string.Join(",", expected.TokenIds)}");
        Assert.Equal(expected.Logprobs.Count, actual.Logprobs.Count);
        for (int i = 0; i < expected.Logprobs.Count; i++)
        {
            Assert.InRange(Math.Abs(expected.Logprobs[i].Logprob - actual.Logprobs[i].Logprob), 0, 1e-5);
            Assert.Equal(expected.TopLogprobs[i].Select(t => t.Id), actual.TopLogprobs[i].Select(t => t.Id));
            for (int j = 0; j < expected.TopLogprobs[i].Count; j++)
                Assert.InRange(Math.Abs(expected.TopLogprobs[i][j].Logprob - actual.TopLogprobs[i][j].Logprob), 0, 1e-5);
        }
        Assert.Equal(expected.FinishReason, actual.FinishReason);
    }

    [Theory]
    [InlineData("stories")]
    [InlineData("mistral")]
    [InlineData("gemma2")]
    public void OutputsWithHitsEqualOutputsWithoutTheCache(string family)
    {
        using var dir = new TempFolder();
        var (model, tokenizer) = LoadWithAdapter(family, dir.Path);
        using var _ = model;
        int vocab = model.Config.VocabSize;
        int[] prefix = Ids(22, 1, vocab);
        int[][] prompts =
        [
            [.. prefix, 5, 9, 12],
            [.. prefix, 7],
            Ids(17, 2, vocab),
            prefix,
            [.. prefix[..9], .. Ids(12, 3, vocab)[1..]],
        ];
        if (family == "mistral") Assert.All(prompts, p => Assert.True(p.Length > SeededFamilies.Window + Block, "the window must bind past the hits"));
        var requests = prompts.SelectMany(p => new[] { (string?)null, "a" }.Select(a =>
            new EngineRequest(p, a, new SamplingParams { MaxTokens = 6, Logprobs = 2 }))).ToList();

        List<EngineCompletion> reference;
        using (var plain = new ServingEngine(model, tokenizer, new EngineOptions { MaxBatch = 12, MaxModelLen = 128 }))
            reference = requests.Select(r => Run(plain, r)).ToList();
        Assert.All(reference, r => Assert.Equal(0, r.CachedTokens));

        // budget 1024: whole prefills of rows with different hits in one forward; budget 5: chunks from the hit on
        foreach (int budget in new[] { 1024, 5 })
        {
            using var engine = new ServingEngine(model, tokenizer, Cached(model.Config, 64, budget));
            // the shared prefix alone, with each adapter: its 5 full blocks are kept (it computes its last token
            // itself, so only 20 of its 22 positions come from the cache when it is asked again)
            foreach (var a in new[] { (string?)null, "a" })
                Assert.Equal(0, Run(engine, new EngineRequest(prefix, a, new SamplingParams { MaxTokens = 1 })).CachedTokens);
            var first = RunTogether(engine, requests);
            var second = RunTogether(engine, requests);
            int[] expectedFirst = [20, 20, 0, 20, 8];
            for (int i = 0; i < requests.Count; i++)
            {
                int p = i / 2;
                AssertSameOutput(reference[i], first[i], $"{family}, budget {budget}, request {i}, first");
                AssertSameOutput(reference[i], second[i], $"{family}, budget {budget}, request {i}, again");
                Assert.Equal(expectedFirst[p], first[i].CachedTokens);
                Assert.Equal((prompts[p].Length - 1) / Block * Block, second[i].CachedTokens);
                Assert.Equal(prompts[p].Length, second[i].PromptTokens);
            }
        }
    }

    [Fact]
    public async Task TheLeastRecentlyUsedBlocksGoWhenThePoolIsFull()
    {
        var tokenizer = ModelLoading.LoadTokenizer(SeededLlama.Folder);
        using var model = SeededLlama.Load();
        int vocab = model.Config.VocabSize;
        using var engine = new ServingEngine(model, tokenizer, Cached(model.Config, blocks: 6));
        Assert.Equal(6 * BlockBytes(model.Config), engine.PrefixCacheBytes);
        int[] a = Ids(13, 1, vocab), b = Ids(13, 2, vocab), c = Ids(13, 3, vocab);
        int Hit(int[] prompt) => Run(engine, new EngineRequest(prompt, null, new SamplingParams { MaxTokens = 1 })).CachedTokens;

        Assert.Equal(0, Hit(a));                       // keeps 3 blocks
        Assert.Equal(0, Hit(b));                       // 3 more: the pool is full
        Assert.Equal(6, await engine.PrefixCachedBlocksAsync());
        Assert.Equal(12, Hit(a));                      // a is used again: b is now the least recent
        Assert.Equal(0, Hit(c));                       // c takes b's blocks, not a's (the oldest kept)
        Assert.Equal(6, await engine.PrefixCachedBlocksAsync());
        Assert.Equal(12, Hit(a));
        Assert.Equal(12, Hit(c));
        Assert.Equal(0, Hit(b));

        // a chain longer than the pool keeps its first blocks: it never evicts its own
        int[] longer = Ids(33, 4, vocab);
        Assert.Equal(0, Hit(longer));
        Assert.Equal(6, await engine.PrefixCachedBlocksAsync());
        Assert.Equal(24, Hit(longer));
        Assert.Equal(0, Hit(a));
    }

    [Fact]
    public async Task PartitionsAdaptersAndReloadedAdaptersNeverShareBlocks()
    {
        using var dir = new TempFolder();
        // adapter "a" saved to a folder, to be loaded again under the same name
        string saved = Path.Combine(dir.Path, "a");
        using (var donor = SeededLlama.Load())
        {
            var config = new LoraConfig { Rank = 4, Alpha = 16, TargetModules = ["q_proj", "v_proj"] };
            LoraInjector.Apply(donor, config, 1);
            LoraTestKit.Randomize(donor, "default", 1, scale: 0.2);
            PeftAdapterFiles.Save(saved, donor, config);
        }
        var tokenizer = ModelLoading.LoadTokenizer(SeededLlama.Folder);
        using var model = ServingEngineTests.ModelWithAdapters();
        using var engine = new ServingEngine(model, tokenizer, Cached(model.Config, 64));
        int[] prompt = Ids(21, 5, model.Config.VocabSize);
        int Hit(string? adapter, string? partition) =>
            Run(engine, new EngineRequest(prompt, adapter, new SamplingParams { MaxTokens = 2 }) { CachePartition = partition }).CachedTokens;

        Assert.Equal(0, Hit(null, null));
        Assert.Equal(20, Hit(null, null));
        Assert.Equal(0, Hit(null, "tenant-1"));        // another partition sees nothing of the shared one
        Assert.Equal(20, Hit(null, "tenant-1"));
        Assert.Equal(0, Hit(null, "tenant-2"));
        Assert.Equal(0, Hit(null, ""));                // an empty key is a partition too, not the shared one
        Assert.Equal(0, Hit("a", null));               // an adapter changes every token's keys and values
        Assert.Equal(20, Hit("a", null));
        Assert.Equal(0, Hit("b", null));

        await engine.UnloadAdapterAsync("a");
        await engine.LoadAdapterAsync("a", saved);
        Assert.Equal(0, Hit("a", null));               // the same name, loaded again: not the old adapter's blocks
        Assert.Equal(20, Hit("a", null));
        Assert.Equal(20, Hit(null, null));
    }

    [Theory]
    [InlineData("stories")]
    [InlineData("mistral")]
    public void ScoringRowsEqualChoiceScorerWithAndWithoutHits(string family)
    {
        using var dir = new TempFolder();
        var (model, tokenizer) = LoadWithAdapter(family, dir.Path);
        using var _ = model;
        string context = "Once upon a time there was a little dog who liked the park. The sun was hot. Was the dog happy? Answer:";
        string[] labels = [" yes", " no", " the dog was very happy indeed"];
        string?[] adapters = [null, "a"];
        var rows = labels.Select(l => ChoiceScorer.Continuation(tokenizer, context, l, tokenizer.AddsBosByDefault)).ToList();
        int[] from = rows.Select(r => r.PromptLength).ToArray();
        Assert.All(from, f => Assert.Equal(from[0], f));    // the labels follow the same context ids
        int[] contextIds = rows[0].InputIds[..from[0]];
        Assert.True(contextIds.Length > 2 * Block);

        var expected = new Dictionary<string, double[]>();
        foreach (var a in adapters)
        {
            LoraInjector.SetActiveAdapter(model, a);
            expected[a ?? ""] = ChoiceScorer.Score(model, tokenizer, [new Example(context, "")], labels, batchSize: 3)[0];
        }
        LoraInjector.SetActiveAdapter(model, null);
        EngineRequest Scoring(int label, string? adapter) =>
            new(rows[label].InputIds, adapter, new SamplingParams()) { ScoreFrom = from[label] };
        var generating = new EngineRequest(Ids(15, 7, model.Config.VocabSize), "a", new SamplingParams { MaxTokens = 5, Logprobs = 1 });

        EngineCompletion generated;
        using (var plain = new ServingEngine(model, tokenizer, new EngineOptions { MaxBatch = 12, MaxModelLen = 128 }))
        {
            generated = Run(plain, generating);
            var scored = RunTogether(plain, adapters.SelectMany(a => labels.Select((_, l) => Scoring(l, a))).ToList());
            for (int i = 0; i < scored.Count; i++)
            {
                Assert.Equal(FinishReason.Scored, scored[i].FinishReason);
                Assert.Empty(scored[i].TokenIds);
                Assert.Equal(0, scored[i].CompletionTokens);
                Assert.InRange(Math.Abs(scored[i].Score!.Value - expected[adapters[i / labels.Length] ?? ""][i % labels.Length]), 0, 1e-4);
            }
        }

        foreach (int budget in new[] { 1024, 5 })
        {
            using var engine = new ServingEngine(model, tokenizer, Cached(model.Config, 64, budget));
            foreach (var a in adapters)
            {
                // the shared input first, prefill only: kept in the cache, score 0
                var prefill = Run(engine, new EngineRequest(contextIds, a, new SamplingParams()) { ScoreFrom = contextIds.Length });
                Assert.Equal(0.0, prefill.Score);
                Assert.Equal(0, prefill.CachedTokens);
            }
            // the questions of both adapters as rows of one batch, beside a generating row
            var requests = adapters.SelectMany(a => labels.Select((_, l) => Scoring(l, a))).Append(generating).ToList();
            var results = RunTogether(engine, requests);
            for (int i = 0; i < requests.Count - 1; i++)
            {
                Assert.Equal((from[i % labels.Length] - 1) / Block * Block, results[i].CachedTokens);
                Assert.InRange(Math.Abs(results[i].Score!.Value - expected[adapters[i / labels.Length] ?? ""][i % labels.Length]), 0, 1e-4);
            }
            AssertSameOutput(generated, results[^1], $"{family}: the generating row beside scoring rows");
            Assert.Null(results[^1].Score);
        }
    }

    [Fact]
    public void ScoringRowsAreCheckedForWhereTheirScoreStarts()
    {
        var tokenizer = ModelLoading.LoadTokenizer(SeededLlama.Folder);
        using var model = SeededLlama.Load();
        using var engine = new ServingEngine(model, tokenizer, new EngineOptions { MaxBatch = 2, MaxModelLen = 16 });
        int[] ids = Ids(16, 1, model.Config.VocabSize);
        foreach (int from in new[] { 0, 17 })
        {
            var e = Assert.Throws<ServingException>(() => engine.Submit(new EngineRequest(ids, null, new SamplingParams()) { ScoreFrom = from }));
            Assert.Contains("[1, 16]", e.Message);
        }
        // a whole context to score: no completion tokens are asked for, so max_tokens does not count
        var full = Run(engine, new EngineRequest(ids, null, new SamplingParams { MaxTokens = 100 }) { ScoreFrom = 1 });
        Assert.True(full.Score < 0);
        Assert.Throws<ServingException>(() => engine.Submit(new EngineRequest([.. ids, 5], null, new SamplingParams()) { ScoreFrom = 1 }));
    }

    [Fact]
    public void APoolSmallerThanOneBlockIsRefused()
    {
        var tokenizer = ModelLoading.LoadTokenizer(SeededLlama.Folder);
        using var model = SeededLlama.Load();
        var e = Assert.Throws<UserInputException>(() => new ServingEngine(model, tokenizer, Cached(model.Config, 1) with { PrefixCacheBytes = BlockBytes(model.Config) - 1 }));
        Assert.Contains("prefix_cache_gib", e.Message);
    }
}
