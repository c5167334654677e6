using FinQLoRA.Inference.Decoding;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Serving;
using FinQLoRA.Tests.Serving;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Inference.Decoding;

/// <summary>
/// The server's slot pool and the managed single-token step (<see cref="IFirstRowAsWholeCache"/>): while one row runs
/// it sits in slot 0, which is laid out as a batch-1 whole-model cache, so <see cref="DecodeStep.Choose"/> gives the
/// pool the managed step; a step of two rows goes to the libtorch step. Checked against the libtorch step over a second,
/// identical pool (its logits and the keys and values it writes), and through the engine.
/// </summary>
public sealed class SlotPoolDecodeStepTests
{
    private static readonly long[] Tokens = [1, 412, 97, 18, 305, 7];

    [Fact]
    public void ALoneRowInTheSlotPoolTakesTheManagedStepAndWritesWhatTheLibtorchStepWrites()
    {
        using var model = SeededLlama.Load();
        using var noGrad = no_grad();
        using var managedPool = new SlotKvCache(model.Config, slots: 2, capacity: 16, model.ComputeDType, CPU);
        using var torchPool = new SlotKvCache(model.Config, slots: 2, capacity: 16, model.ComputeDType, CPU);
        Assert.Null(ManagedStepSupport.Rejects(model, managedPool));
        var managed = Assert.IsType<ManagedDecodeStep>(DecodeStep.Choose(model, managedPool));
        var torch = Assert.IsType<LibtorchDecodeStep>(DecodeStep.Choose(model, torchPool, allowManaged: false));
        for (int pos = 0; pos < Tokens.Length; pos++)
        {
            using var scope = NewDisposeScope();
            var expected = Step(torch, torchPool, [Tokens[pos]], [pos]);
            var actual = Step(managed, managedPool, [Tokens[pos]], [pos]);
            TensorAssert.MaxDiffBelow(expected, actual, 1e-4, $"logits at position {pos}");
        }
        Assert.Equal(Tokens.Length, managed.Steps);
        for (int layer = 0; layer < model.Config.NumLayers; layer++)
        {
            TensorAssert.MaxDiffBelow(torchPool.Layer(layer).Keys[0], managedPool.Layer(layer).Keys[0], 1e-5, $"layer {layer} keys");
            TensorAssert.MaxDiffBelow(torchPool.Layer(layer).Values[0], managedPool.Layer(layer).Values[0], 1e-5, $"layer {layer} values");
        }

        // Two rows at their own lengths: the libtorch step (row 0's cache differs from the other pool's in the last bits,
        // from the managed step's summation order, so the logits agree closely rather than exactly).
        using (NewDisposeScope())
        {
            var expected = Step(torch, torchPool, [5, 9], [Tokens.Length, 0]);
            var actual = Step(managed, managedPool, [5, 9], [Tokens.Length, 0]);
            TensorAssert.MaxDiffBelow(expected, actual, 1e-4, "a step of two rows");
        }
        Assert.Equal(Tokens.Length, managed.Steps);
    }

    [Fact]
    public void AModelOutsideTheSetTakesTheLibtorchStepOverTheSlotPool()
    {
        using var fp16 = ModelLoading.LoadModel(SeededLlama.Folder, new ModelLoadOptions { DType = ScalarType.Float16 });
        using var noGrad = no_grad();
        using var pool = new SlotKvCache(fp16.Config, slots: 1, capacity: 16, fp16.ComputeDType, CPU);
        Assert.Contains("Float16", ManagedStepSupport.Rejects(fp16, pool));
        Assert.IsType<LibtorchDecodeStep>(DecodeStep.Choose(fp16, pool));
    }

    [Fact]
    public void ASingleRowEngineRunTakesTheManagedStepAndAnFp16OneDoesNot()
    {
        var tokenizer = ModelLoading.LoadTokenizer(SeededLlama.Folder);
        var request = new EngineRequest(tokenizer.Encode("The little dog", addBos: true), null, new SamplingParams { MaxTokens = 8 });
        using (var model = SeededLlama.Load())
        using (var engine = new ServingEngine(model, tokenizer, new EngineOptions { MaxBatch = 1, MaxModelLen = 64 }))
        {
            var done = EngineTestKit.Run(engine, request);
            Assert.True(done.TokenIds.Count > 1, "no decode step ran");
            Assert.Equal(done.TokenIds.Count - 1, engine.ManagedSteps);
            Assert.Equal(NaiveGreedy.Generate(model, tokenizer, request.PromptIds, 8), done.TokenIds);
        }
        using var fp16 = ModelLoading.LoadModel(SeededLlama.Folder, new ModelLoadOptions { DType = ScalarType.Float16 });
        using var fp16Engine = new ServingEngine(fp16, tokenizer, new EngineOptions { MaxBatch = 1, MaxModelLen = 64 });
        Assert.True(EngineTestKit.Run(fp16Engine, request).TokenIds.Count > 1, "no decode step ran");
        Assert.Equal(0, fp16Engine.ManagedSteps);
    }

    /// <summary>One decode step of rows 0..n-1 (slot r) at positions <paramref name="lengths"/>, placed and masked as
    /// the engine's model runner does.</summary>
    private static Tensor Step(IDecodeStep step, SlotKvCache pool, long[] ids, long[] lengths)
    {
        int n = ids.Length;
        int span = (int)lengths.Max() + 1;
        var lengthsTensor = tensor(lengths);
        new CacheWrite.Decode(lengthsTensor, span).Begin(pool, 0, n);
        var mask = AttentionMask.Build(AttentionMask.RightPadding(lengthsTensor + 1, span), n, 1, span - 1, CPU);
        return step.Forward(tensor(ids, [n, 1]), lengthsTensor.view(n, 1), mask);
    }
}
