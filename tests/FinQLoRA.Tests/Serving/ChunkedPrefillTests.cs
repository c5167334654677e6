using FinQLoRA.Adapters;
using FinQLoRA.Inference;
using FinQLoRA.Loading;
using FinQLoRA.Serving;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Serving;

/// <summary>Prompts longer than the per-step prefill budget are prefilled a chunk per iteration between decode steps:
/// the outputs stay those of one whole prefill, and running streams keep getting tokens meanwhile.</summary>
public sealed class ChunkedPrefillTests
{
    private static readonly string[] Prompts =
        ["Once upon a time", "The little dog", "Lily went to the park and", "Tom had a big", "One day, a girl named Sue", "The sun"];

    [Fact]
    public void ChunkedPrefillGivesTheOutputsOfAWholePrefill()
    {
        var tokenizer = ModelLoading.LoadTokenizer(SeededLlama.Folder);
        using var model = ServingEngineTests.ModelWithAdapters();
        string?[] adapters = [null, "a", "b", "d"];
        var requests = Enumerable.Range(0, 8).Select(i => new EngineRequest(tokenizer.Encode(Prompts[i % Prompts.Length], addBos: true),
            adapters[i % 4], new SamplingParams { MaxTokens = 5 + i % 4 })).ToList();
        Assert.All(requests, r => Assert.True(r.PromptIds.Length > 3, "every prompt must be chunked"));

        var reference = ServingEngineTests.GenerateAlone(model, tokenizer, requests);

        // a budget of 3 tokens per step: every prompt takes several chunks; three slots, so rows move while one chunks
        using var engine = new ServingEngine(model, tokenizer, new EngineOptions { MaxBatch = 3, MaxModelLen = 128, PrefillTokensPerStep = 3 });
        var readers = requests.Select(engine.Submit).ToList();
        var outputs = readers.Select(r => EngineCompletion.ReadAsync(r).GetAwaiter().GetResult()).ToList();
        for (int i = 0; i < requests.Count; i++)
        {
            Assert.Equal(reference[i], outputs[i].TokenIds);
            Assert.Equal(requests[i].PromptIds.Length, outputs[i].PromptTokens);
        }
        Assert.Equal(0, engine.Running);
        Assert.Equal(0, engine.Queued);
    }

    [Fact]
    public async Task RunningStreamsGetTokensWhileALongPromptPrefills()
    {
        var tokenizer = ModelLoading.LoadTokenizer(SeededLlama.Folder);
        using var model = ServingEngineTests.ModelWithAdapters();
        var observer = new TokenCounter();
        using var engine = new ServingEngine(model, tokenizer, new EngineOptions { MaxBatch = 4, MaxModelLen = 128, PrefillTokensPerStep = 4 }, observer);
        var running = engine.Submit(new EngineRequest([1, 5, 6], null, new SamplingParams { MaxTokens = 60 }));
        Assert.True(await running.WaitToReadAsync().AsTask().WaitAsync(TimeSpan.FromMinutes(1)));
        int[] longPrompt = [1, .. Enumerable.Range(0, 39).Select(i => 10 + i * 7 % 400)];
        System.Threading.Channels.ChannelReader<EngineEvent> longReader;
        int before;
        using (engine.PauseForTests())
        {
            before = observer.BaseTokens;
            longReader = engine.Submit(new EngineRequest(longPrompt, "a", new SamplingParams { MaxTokens = 2 }));
        }
        var longDone = await EngineCompletion.ReadAsync(longReader);
        await EngineCompletion.ReadAsync(running);
        Assert.InRange(longDone.CompletionTokens, 1, 2);
        // 40 prompt tokens at 4 a step are 10 chunks; the running stream decodes once after every one of them
        Assert.True(observer.BaseTokensAtAdapterFirstToken - before >= 9,
            $"the running stream got {observer.BaseTokensAtAdapterFirstToken - before} tokens while the long prompt prefilled");
    }

    /// <summary>Counts the base model's tokens on the scheduler thread, and notes the count when an adapter's first
    /// token comes.</summary>
    private sealed class TokenCounter : IEngineObserver
    {
        private int _base;
        public int BaseTokens => Volatile.Read(ref _base);
        public int BaseTokensAtAdapterFirstToken { get; private set; } = -1;
        public void QueueDepth(int waiting) { }
        public void BatchSize(int running) { }
        public void FirstToken(string? adapter, TimeSpan sinceSubmit)
        {
            if (adapter is null) Interlocked.Increment(ref _base);
            else BaseTokensAtAdapterFirstToken = BaseTokens;
        }
        public void NextToken(string? adapter, TimeSpan sincePrevious)
        {
            if (adapter is null) Interlocked.Increment(ref _base);
        }
        public void Finished(string? adapter, int promptTokens, int completionTokens) { }
    }
}
