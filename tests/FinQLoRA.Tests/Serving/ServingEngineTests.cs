using FinQLoRA.Loading;
using FinQLoRA.Adapters;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Inference;
using FinQLoRA.Models;
using FinQLoRA.Serving;
using FinQLoRA.Tests.Adapters;
using FinQLoRA.Tests.Support;
using System.Threading.Channels;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Serving;

/// <summary>The continuous-batching engine on a seeded Llama (f32, stories260K's shapes, its own tokenizer) with adapters
/// made in the test: the engine must agree with itself and with generate, whatever the weights.</summary>
public sealed class ServingEngineTests
{
    private static readonly string[] Prompts =
        ["Once upon a time", "The little dog", "Lily went to the park and", "Tom had a big", "One day, a girl named Sue", "The sun"];

    /// <summary>The seeded model with three adapters of different ranks and targets (one DoRA), B made nonzero.</summary>
    internal static DecoderModel ModelWithAdapters()
    {
        var model = SeededLlama.Load();
        LoraInjector.Apply(model, new LoraConfig { Rank = 4, Alpha = 16, TargetModules = ["q_proj", "v_proj"] }, 1, "a");
        LoraTestKit.Randomize(model, "a", 1, scale: 0.2);
        LoraInjector.Apply(model, new LoraConfig { Rank = 8, Alpha = 8, TargetModules = ["up_proj", "down_proj", "o_proj"] }, 2, "b");
        LoraTestKit.Randomize(model, "b", 2, scale: 0.2);
        LoraInjector.Apply(model, new LoraConfig { Rank = 2, Alpha = 4, TargetModules = ["k_proj", "gate_proj"], UseDora = true }, 3, "d");
        LoraTestKit.Randomize(model, "d", 3, scale: 0.3);
        model.eval();
        return model;
    }

    /// <summary>generate's path for each request on its own: its adapter active, greedy; the model is left on its base.</summary>
    internal static List<int[]> GenerateAlone(DecoderModel model, ITextTokenizer tokenizer, IReadOnlyList<EngineRequest> requests)
    {
        var reference = requests.Select(r =>
        {
            LoraInjector.SetActiveAdapter(model, r.Adapter);
            return NaiveGreedy.Generate(model, tokenizer, r.PromptIds, r.Sampling.MaxTokens);
        }).ToList();
        LoraInjector.SetActiveAdapter(model, null);
        return reference;
    }

    private static ITextTokenizer Tokenizer() => ModelLoading.LoadTokenizer(SeededLlama.Folder);

    private static EngineCompletion Run(ServingEngine engine, EngineRequest r) =>
        EngineCompletion.ReadAsync(engine.Submit(r)).GetAwaiter().GetResult();

    [Fact]
    public void MixedAdapterBatchEqualsEachRequestAloneAndTheBatchGenerator()
    {
        var tokenizer = Tokenizer();
        using var model = ModelWithAdapters();
        string?[] adapters = [null, "a", "b", "d"];
        var requests = new List<EngineRequest>();
        for (int i = 0; i < 12; i++)
            requests.Add(new EngineRequest(tokenizer.Encode(Prompts[i % Prompts.Length], addBos: true), adapters[i % 4],
                new SamplingParams { MaxTokens = 6 + (i * 5) % 13 }));

        var reference = GenerateAlone(model, tokenizer, requests);
        var baseOnly = requests.Select(r => NaiveGreedy.Generate(model, tokenizer, r.PromptIds, r.Sampling.MaxTokens)).ToList();
        foreach (string name in new[] { "a", "b", "d" }) // each adapter changes the output, so a wrong pick would be seen
            Assert.Contains(Enumerable.Range(0, requests.Count), i => requests[i].Adapter == name && !reference[i].SequenceEqual(baseOnly[i]));

        // Three slots for twelve requests: rows leave at different steps and newcomers join the running batch.
        using var engine = new ServingEngine(model, tokenizer, new EngineOptions { MaxBatch = 3, MaxModelLen = 128 });
        var alone = requests.Select(r => Run(engine, r)).ToList();
        var readers = requests.Select(engine.Submit).ToList();
        var mixed = readers.Select(r => EngineCompletion.ReadAsync(r).GetAwaiter().GetResult()).ToList();
        for (int i = 0; i < requests.Count; i++)
        {
            Assert.Equal(reference[i], alone[i].TokenIds);
            Assert.Equal(alone[i].TokenIds, mixed[i].TokenIds);
            Assert.Equal(alone[i].Text, mixed[i].Text);
            Assert.Equal(ServeFixture.AfterPrompt(tokenizer, requests[i].PromptIds, reference[i]), mixed[i].Text);
            Assert.Equal(requests[i].PromptIds.Length, mixed[i].PromptTokens);
        }
        Assert.Equal(0, engine.Running);
        Assert.Equal(0, engine.Queued);
    }

    [Fact]
    public void SampledRequestsFollowTheirOwnSeedWhateverElseIsInTheBatch()
    {
        var tokenizer = Tokenizer();
        using var model = SeededLlama.Load();
        using var engine = new ServingEngine(model, tokenizer, new EngineOptions { MaxBatch = 8, MaxModelLen = 64 });
        var prompt = tokenizer.Encode("Once upon a time", addBos: true);
        EngineRequest Sampled(long seed) => new(prompt, null, new SamplingParams { MaxTokens = 20, Temperature = 1.0, TopP = 0.9, Seed = seed });
        var alone = Run(engine, Sampled(7));
        var batch = new[] { Sampled(7), Sampled(8), Sampled(9), Sampled(7) }.Select(engine.Submit).ToList()
            .Select(r => EngineCompletion.ReadAsync(r).GetAwaiter().GetResult()).ToList();
        Assert.Equal(alone.TokenIds, batch[0].TokenIds);
        Assert.Equal(alone.TokenIds, batch[3].TokenIds);
        Assert.NotEqual(batch[0].TokenIds, batch[1].TokenIds);
    }

    [Fact]
    public void StopStringsCutTheTextAndLogprobsAreReported()
    {
        var tokenizer = Tokenizer();
        using var model = SeededLlama.Load();
        using var engine = new ServingEngine(model, tokenizer, new EngineOptions { MaxBatch = 2, MaxModelLen = 64 });
        var prompt = tokenizer.Encode("Once upon a time", addBos: true);
        var free = Run(engine, new EngineRequest(prompt, null, new SamplingParams { MaxTokens = 30 }));
        // A stop string made of the middle of the free text, so it spans token boundaries.
        string stop = free.Text.Substring(8, 5);
        int expectedCut = free.Text.IndexOf(stop, StringComparison.Ordinal);
        var stopped = Run(engine, new EngineRequest(prompt, null, new SamplingParams { MaxTokens = 30, Stop = [stop], Logprobs = 3 }));
        Assert.Equal("stop", stopped.FinishReason.Value);
        Assert.Equal(free.Text[..expectedCut], stopped.Text);
        Assert.True(stopped.CompletionTokens < free.CompletionTokens);
        Assert.Equal(stopped.TokenIds.Count, stopped.Logprobs.Count);
        for (int i = 0; i < stopped.Logprobs.Count; i++)
        {
            Assert.Equal(stopped.TokenIds[i], stopped.Logprobs[i].Id);
            Assert.Equal(3, stopped.TopLogprobs[i].Count);
            // Greedy: the chosen token is the most likely one.
            Assert.Equal(stopped.TopLogprobs[i][0].Id, stopped.TokenIds[i]);
            Assert.True(stopped.Logprobs[i].Logprob <= 0);
        }
        Assert.Equal("length", free.FinishReason.Value);
        Assert.Equal(30, free.CompletionTokens);
    }

    /// <summary>The final event says which stop ended the output (vLLM's stop_reason), in the one
    /// <see cref="FinishReason"/> that generate reports too: a stop id is counted but not part of the output.</summary>
    [Fact]
    public void TheFinalEventSaysWhichStopEndedTheOutput()
    {
        var tokenizer = Tokenizer();
        using var model = SeededLlama.Load();
        using var engine = new ServingEngine(model, tokenizer, new EngineOptions { MaxBatch = 2, MaxModelLen = 64 });
        var prompt = tokenizer.Encode("Once upon a time", addBos: true);
        var free = Run(engine, new EngineRequest(prompt, null, new SamplingParams { MaxTokens = 30 }));
        Assert.Equal(FinishReason.Length, free.FinishReason);

        int stopId = free.TokenIds[3];
        var atToken = Run(engine, new EngineRequest(prompt, null, new SamplingParams { MaxTokens = 30, StopTokenIds = [stopId] }));
        Assert.Equal(FinishReason.AtToken(stopId), atToken.FinishReason);
        Assert.Equal(free.TokenIds.TakeWhile(id => id != stopId), atToken.TokenIds);
        Assert.Equal(atToken.TokenIds.Count + 1, atToken.CompletionTokens);

        string stop = free.Text.Substring(8, 5);
        var atString = Run(engine, new EngineRequest(prompt, null, new SamplingParams { MaxTokens = 30, Stop = ["no such text", stop] }));
        Assert.Equal(FinishReason.AtString(stop), atString.FinishReason);
    }

    /// <summary>The limits below are sized to a prompt of 5 tokens (stories260K's ids for "Once upon a time").</summary>
    [Fact]
    public void ContextOverflowAndUnknownAdapterAreRefusedAndCancelledRowsFreeTheirSlots()
    {
        var tokenizer = ModelLoading.LoadTokenizer(SeededLlama.Folder);
        using var model = SeededLlama.Load();
        using var engine = new ServingEngine(model, tokenizer, new EngineOptions { MaxBatch = 2, MaxQueue = 1, MaxModelLen = 32 });
        int[] prompt = LoraTestKit.PromptIds[0][..5].Select(id => (int)id).ToArray();
        var e = Assert.Throws<ServingException>(() => engine.Submit(new EngineRequest(prompt, null, new SamplingParams { MaxTokens = 40 })));
        Assert.Equal(ServingErrorKind.ContextLength, e.Kind);
        Assert.Contains("32", e.Message);
        Assert.Contains($"{prompt.Length + 40}", e.Message);
        Assert.Equal(ServingErrorKind.UnknownModel, Assert.Throws<ServingException>(() => engine.Submit(new EngineRequest(prompt, "nope", new SamplingParams()))).Kind);

        using var cts = new CancellationTokenSource();
        List<System.Threading.Channels.ChannelReader<EngineEvent>> readers;
        using (engine.PauseForTests())
        {
            // Two free slots and a queue of one: the fourth request is refused.
            readers = Enumerable.Range(0, 3).Select(_ => engine.Submit(new EngineRequest(prompt, null, new SamplingParams { MaxTokens = 25 }, cts.Token))).ToList();
            Assert.Equal(ServingErrorKind.QueueFull, Assert.Throws<ServingException>(() => engine.Submit(new EngineRequest(prompt, null, new SamplingParams()))).Kind);
            cts.Cancel();
        }
        foreach (var r in readers)
            Assert.ThrowsAny<OperationCanceledException>(() => EngineCompletion.ReadAsync(r).GetAwaiter().GetResult());
        Assert.Equal(0, engine.Running);
        Assert.Equal(0, engine.Queued);
        Assert.Equal(25, Run(engine, new EngineRequest(prompt, null, new SamplingParams { MaxTokens = 25 })).CompletionTokens);
    }

    [Fact]
    public void StreamedTextNeverSplitsACharacterAndConcatenatesToTheDecodedText()
    {
        var tokenizer = Tokenizer();
        string text = "Ünïcødé ☕ café — naïve 日本";
        var ids = tokenizer.Encode(text, addBos: false);
        var incremental = new IncrementalText(tokenizer, [], anchor: null);
        var deltas = ids.Select(incremental.Add).Append(incremental.Flush()).ToList();
        Assert.All(deltas, d => Assert.DoesNotContain('\uFFFD', d));
        Assert.Equal(tokenizer.Decode(ids), string.Concat(deltas));
        Assert.True(deltas.Count(d => d.Length == 0) > 0); // some tokens were partial characters and held back

        // A stop string split over tokens is held back until it is known, then cut.
        var stop = new IncrementalText(tokenizer, ["café"]);
        var parts = ids.Select(stop.Add).ToList();
        Assert.True(stop.Stopped);
        Assert.Equal(text[..text.IndexOf("café", StringComparison.Ordinal)], string.Concat(parts));
    }

    [Fact]
    public async Task DrainFinishesWhatItCanAndEndsWhatOutlivesTheDeadline()
    {
        var tokenizer = Tokenizer();
        using var model = SeededLlama.Load();
        using var engine = new ServingEngine(model, tokenizer, new EngineOptions { MaxBatch = 2, MaxModelLen = 512 });
        var prompt = tokenizer.Encode("Once upon a time", addBos: true);
        var shortOne = engine.Submit(new EngineRequest(prompt, null, new SamplingParams { MaxTokens = 3 }));
        Assert.Equal(3, (await EngineCompletion.ReadAsync(shortOne)).CompletionTokens);
        Assert.True(await engine.DrainAsync(TimeSpan.FromSeconds(30))); // nothing running: drained at once
        Assert.Equal(ServingErrorKind.ShuttingDown, Assert.Throws<ServingException>(() => engine.Submit(new EngineRequest(prompt, null, new SamplingParams()))).Kind);
    }

    [Fact]
    public async Task ADeadlineEndsLongRequestsWithoutAFinalEvent()
    {
        var tokenizer = Tokenizer();
        using var model = SeededLlama.Load();
        using var engine = new ServingEngine(model, tokenizer, new EngineOptions { MaxBatch = 2, MaxModelLen = 512 });
        var prompt = tokenizer.Encode("Once upon a time", addBos: true);
        ChannelReader<EngineEvent> longOne;
        using (engine.PauseForTests())
            longOne = engine.Submit(new EngineRequest(prompt, null, new SamplingParams { MaxTokens = 500, Temperature = 1, Seed = 1 }));
        Assert.False(await engine.DrainAsync(TimeSpan.Zero));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => EngineCompletion.ReadAsync(longOne));
        Assert.Equal(0, engine.Running + engine.Queued);
    }
}
