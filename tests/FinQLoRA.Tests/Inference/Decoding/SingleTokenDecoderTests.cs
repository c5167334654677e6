using System.Runtime.CompilerServices;
using FinQLoRA.Adapters;
using FinQLoRA.Inference;
using FinQLoRA.Inference.Decoding;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Tests.Adapters;
using FinQLoRA.Tests.Support;
using FinQLoRA.Serving;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Inference.Decoding;

/// <summary>
/// The managed one-token decode step (<see cref="SingleTokenDecoder"/>) against the libtorch forward it stands in for:
/// the same logits to fp32 rounding, the same greedy ids and the same keys and values in the cache, on stories260K's
/// shapes and on a tied-head model with Llama 3.1 RoPE scaling and 4 query heads per KV head. Where it does not apply
/// (DoRA adapters, fp16), the chosen step (<see cref="DecodeStep.Choose"/>) is exactly the libtorch one.
/// </summary>
public sealed class SingleTokenDecoderTests
{
    /// <summary>Managed steps taken per model by <see cref="Decode"/> (the count the model kept before the choice moved
    /// out of its forward).</summary>
    private static readonly ConditionalWeakTable<DecoderModel, StrongBox<long>> ManagedStepCounts = [];

    private static long ManagedSteps(DecoderModel model) => ManagedStepCounts.GetOrCreateValue(model).Value;

    private static readonly Lazy<string> ScaledTiedFolder = new(() =>
    {
        var temp = new TempFolder();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => temp.Dispose();
        var config = SeededLlama.Stories260KShapes with
        {
            TieWordEmbeddings = true, NumHeads = 8, NumKvHeads = 2, RopeTheta = 500000, MaxPositionEmbeddings = 256,
            RopeScaling = new RopeScaling("llama3", 8, 1, 4, 64),
        };
        return SeededLlama.Write(temp.PathOf("scaled-tied"), config, seed: 31);
    });

    /// <summary>Layers of ~1.1M weights: enough for the step to split its products over the torch threads.</summary>
    private static readonly Lazy<string> WideFolder = new(() =>
    {
        var temp = new TempFolder();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => temp.Dispose();
        return SeededLlama.Write(temp.PathOf("wide"), SeededLlama.WideShapes, seed: 17);
    });

    private static readonly long[] Prompt = [1, 403, 407, 261, 378, 90, 44];

    [Theory]
    [InlineData("stories")]
    [InlineData("scaled-tied")]
    [InlineData("wide")]
    public void ManagedStepsGiveTheLibtorchLogitsIdsAndCache(string which)
    {
        string folder = which switch { "scaled-tied" => ScaledTiedFolder.Value, "wide" => WideFolder.Value, _ => SeededLlama.Folder };
        using var model = ModelLoading.LoadModel(folder, new ModelLoadOptions { DType = ScalarType.Float32 });
        // "wide" takes the threaded path wherever torch has more than one thread (the 2-core CI machine has two);
        // the thread count is not changed here, because it is process-wide and other tests run alongside
        using var noGrad = no_grad();
        var (managedIds, managedLogits, managedCache) = Decode(model, managed: true, steps: 40);
        Assert.Equal(40, ManagedSteps(model));
        var (torchIds, torchLogits, torchCache) = Decode(model, managed: false, steps: 40);
        Assert.Equal(40, ManagedSteps(model));
        using (managedCache)
        using (torchCache)
        {
            Assert.Equal(torchIds, managedIds);
            for (int i = 0; i < torchLogits.Count; i++) TensorAssert.Close(torchLogits[i], managedLogits[i], rtol: 1e-4, atol: 1e-4);
            Assert.Equal(torchCache.Length, managedCache.Length);
            for (int layer = 0; layer < model.Config.NumLayers; layer++)
            {
                var (tk, tv) = torchCache.LayerStorage(layer);
                var (mk, mv) = managedCache.LayerStorage(layer);
                TensorAssert.Close(tk, mk, rtol: 1e-4, atol: 1e-5);
                TensorAssert.Close(tv, mv, rtol: 1e-4, atol: 1e-5);
            }
        }
    }

    /// <summary>Each thread computes its own KV groups and rows, every row and head the same way whichever thread has
    /// it, so the thread count must not change a bit: 1 thread, 2 (one KV group each), 3 (uneven groups and rows). The
    /// step's thread count is chosen by timing (<c>StepThreadChoice</c>), so every set it computes is checked: fp32 and
    /// bf16 activations, dense, 4-bit and 8-bit weights, with and without an active adapter (each thread makes the
    /// adapter's low-rank input and the int8 codes of its own input copy).</summary>
    [Theory]
    [InlineData(ScalarType.Float32, 16)]
    [InlineData(ScalarType.BFloat16, 16)]
    [InlineData(ScalarType.BFloat16, 4)]
    [InlineData(ScalarType.Float32, 8)]
    [InlineData(ScalarType.BFloat16, 8)]
    [InlineData(ScalarType.Float32, 4, true)]
    [InlineData(ScalarType.BFloat16, 16, true)]
    [InlineData(ScalarType.BFloat16, 8, true)]
    public void EveryThreadCountGivesTheSameLogitsAndCache(ScalarType dtype, int bits, bool adapter = false)
    {
        using var model = AdapterSingleTokenDecoderTests.Load(WideFolder.Value, dtype, bits);
        using var noGrad = no_grad();
        if (adapter) AdapterSingleTokenDecoderTests.Adapt(model, seed: 59);
        using var scope = NewDisposeScope(); // the prompt, the 36 logits and the comparisons' tensors
        var decoder = SingleTokenDecoder.TryCreate(model)!;
        int[] threadCounts = [1, 2, 3];
        var runs = threadCounts.Select(threads =>
        {
            var cache = new KvCache(model.Config, 1, Prompt.Length + 12, model.ComputeDType, CPU);
            using (model.Forward(tensor(Prompt, [1, Prompt.Length]), null, cache, lastOnly: true)) { }
            var logits = new List<Tensor>();
            long next = 5;
            for (int s = 0; s < 12; s++)
            {
                logits.Add(decoder.Step(next, cache, threads));
                next = logits[^1].argmax(-1).item<long>();
            }
            return (Logits: logits, Cache: cache);
        }).ToList();
        for (int r = 1; r < runs.Count; r++)
        {
            var (logits, cache) = runs[r];
            for (int s = 0; s < logits.Count; s++)
                TensorAssert.Equal(runs[0].Logits[s], logits[s], $"{threadCounts[r]} threads, step {s}: logits against the 1-thread step's");
            for (int layer = 0; layer < model.Config.NumLayers; layer++)
            {
                var (k1, v1) = runs[0].Cache.LayerStorage(layer);
                var (k, v) = cache.LayerStorage(layer);
                TensorAssert.Equal(k1, k, $"{threadCounts[r]} threads, layer {layer}: the key cache against the 1-thread step's");
                TensorAssert.Equal(v1, v, $"{threadCounts[r]} threads, layer {layer}: the value cache against the 1-thread step's");
            }
        }
        foreach (var (_, cache) in runs) cache.Dispose();
    }

    [Fact]
    public void WithADoraAdapterOrInFp16TheForwardIsTheLibtorchOne()
    {
        using var noGrad = no_grad();
        using (var adapted = SeededLlama.Load())
        {
            LoraInjector.Apply(adapted, new LoraConfig { Rank = 4, Alpha = 8, UseDora = true, TargetModules = ["q_proj", "down_proj"] }, seed: 3);
            LoraTestKit.Randomize(adapted, LoraLinear.DefaultAdapter, seed: 5);
            AssertManagedEqualsLibTorch(adapted);
        }
        using var fp16 = ModelLoading.LoadModel(SeededLlama.Folder, new ModelLoadOptions { DType = ScalarType.Float16 });
        AssertManagedEqualsLibTorch(fp16);
    }

    [Fact]
    public void AnAdapterInjectedAfterManagedStepsIsUsedByTheNextStep()
    {
        using var model = SeededLlama.Load();
        using var noGrad = no_grad();
        var (before, _, c1) = Decode(model, managed: true, steps: 3);
        c1.Dispose();
        Assert.Equal(3, ManagedSteps(model));
        LoraInjector.Apply(model, new LoraConfig { Rank = 4, Alpha = 8, TargetModules = ["v_proj"] }, seed: 3);
        LoraTestKit.Randomize(model, LoraLinear.DefaultAdapter, seed: 5, scale: 0.5);
        var (_, managed, c2) = Decode(model, managed: true, steps: 3);
        Assert.Equal(6, ManagedSteps(model)); // the adapter's term is the step's own now
        var (_, torch, c3) = Decode(model, managed: false, steps: 3);
        c2.Dispose(); c3.Dispose();
        for (int i = 0; i < torch.Count; i++) TensorAssert.Close(torch[i], managed[i], rtol: 1e-4, atol: 1e-4);
        Assert.NotEmpty(before);
    }

    [Fact]
    public void GenerateAtBatchOneGivesTheLibtorchText()
    {
        using var model = SeededLlama.Load();
        var tokenizer = ModelLoading.LoadTokenizer(SeededLlama.Folder);
        var options = new GenerationOptions { MaxNewTokens = 24, Temperature = 0 };
        var generator = new TextGenerator(model, tokenizer);
        string managed = generator.Generate(["Shares of Acme"], options)[0].Text;
        Assert.True(generator.ManagedSteps > 0, "generate at batch 1 did not take the managed step");
        string torch = new TextGenerator(model, tokenizer) { ManagedDecodeStep = false }.Generate(["Shares of Acme"], options)[0].Text;
        Assert.Equal(torch, managed);
        Assert.NotEmpty(managed);
    }

    private static void AssertManagedEqualsLibTorch(DecoderModel model)
    {
        var (_, managed, c1) = Decode(model, managed: true, steps: 5);
        Assert.Equal(0, ManagedSteps(model));
        var (_, torch, c2) = Decode(model, managed: false, steps: 5);
        c1.Dispose(); c2.Dispose();
        for (int i = 0; i < torch.Count; i++) TensorAssert.Equal(torch[i], managed[i], $"step {i}");
    }

    /// <summary>Prefill through libtorch, then greedy steps through the chosen decode step (managed where it applies, or
    /// libtorch).</summary>
    private static (List<long> Ids, List<Tensor> Logits, KvCache Cache) Decode(DecoderModel model, bool managed, int steps)
    {
        var cache = new KvCache(model.Config, 1, Prompt.Length + steps, model.ComputeDType, CPU);
        var logits = model.Forward(tensor(Prompt, [1, Prompt.Length]), null, cache, lastOnly: true);
        var step = DecodeStep.Choose(model, cache, allowManaged: managed);
        var ids = new List<long>();
        var all = new List<Tensor>();
        for (int s = 0; s < steps; s++)
        {
            long next = logits.argmax(-1).item<long>();
            ids.Add(next);
            logits = step.Forward(tensor(new[] { next }, [1, 1]));
            all.Add(logits.to(ScalarType.Float32));
        }
        if (step is ManagedDecodeStep m) ManagedStepCounts.GetOrCreateValue(model).Value += m.Steps;
        return (ids, all, cache);
    }
}
