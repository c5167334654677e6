using FinQLoRA.Loading;
using FinQLoRA.Serving;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Serving.Pipeline;

/// <summary>What a pipeline's rank 0 does first when a stage stops answering: the engine reads not ready, keeps the
/// first reason, and refuses new requests (the readiness probe turns false before the job is aborted).</summary>
public sealed class EngineFaultTests
{
    [Fact]
    public async Task AFaultedEngineIsNotReadyKeepsItsFirstReasonAndRefusesRequests()
    {
        var tokenizer = ModelLoading.LoadTokenizer(SeededLlama.Folder);
        using var model = SeededLlama.Load();
        using var engine = new ServingEngine(model, tokenizer, new EngineOptions { MaxBatch = 2, MaxModelLen = 64 });
        var prompt = tokenizer.Encode("Once upon a time", addBos: true);
        var before = await EngineCompletion.ReadAsync(engine.Submit(new EngineRequest(prompt, null, new SamplingParams { MaxTokens = 2 })));
        Assert.True(engine.IsReady);
        Assert.Null(engine.Fault);

        engine.MarkFaulted("rank 1 stopped answering");
        engine.MarkFaulted("a later reason");

        Assert.False(engine.IsReady);
        Assert.Equal("rank 1 stopped answering", engine.Fault);
        var refused = Assert.Throws<ServingException>(() => engine.Submit(new EngineRequest(prompt, null, new SamplingParams { MaxTokens = 2 })));
        Assert.Equal(ServingErrorKind.ShuttingDown, refused.Kind);
        Assert.Equal(2, before.TokenIds.Count);
    }
}
