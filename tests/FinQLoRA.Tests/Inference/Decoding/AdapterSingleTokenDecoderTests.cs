using FinQLoRA.Adapters;
using FinQLoRA.Inference.Decoding;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Quantization;
using FinQLoRA.Tests.Adapters;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Inference.Decoding;

/// <summary>
/// The managed single-token step with an active LoRA adapter on every projection, fp32 activations, against the
/// libtorch step over the same model: dense, 4-bit and 8-bit bases (the kernels add the term as
/// <see cref="LoraLinear"/>'s fused gemv does; over a dense base as its no-grad forward does), on stories260K's shapes
/// and on layers wide enough for the threaded step. The two steps run side by side, each on its own cache, fed
/// libtorch's greedy ids; the adapter is switched off and on again mid-run, and each step must follow (the managed step
/// reads the adapter state before every step). A DoRA adapter stays outside the set: the step hands it to libtorch.
/// The bf16 cases are in <see cref="Bf16SingleTokenDecoderTests"/>.
/// </summary>
public sealed class AdapterSingleTokenDecoderTests
{
    private static readonly Lazy<string> WideFolder = new(() =>
    {
        var temp = new TempFolder();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => temp.Dispose();
        return SeededLlama.Write(temp.PathOf("wide-adapter"), SeededLlama.WideShapes, seed: 37);
    });

    private static readonly long[] Prompt = [1, 403, 407, 261, 378, 90, 44];

    internal static readonly string[] AllProjections = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

    internal static DecoderModel Load(string folder, ScalarType dtype, int bits)
    {
        var options = new ModelLoadOptions { DType = dtype };
        return ModelLoading.LoadModel(folder, bits switch
        {
            16 => options,
            8 => options.WithInt8(EightBitLoading.OutlierThreshold),
            _ => options.WithBits(bits, FourBitType.Nf4, doubleQuant: true),
        });
    }

    /// <summary>A rank-8 adapter on every projection, B random (0.2 scale: the adapter moves the logits by much more than
    /// the steps' rounding differences), active.</summary>
    internal static void Adapt(DecoderModel model, long seed)
    {
        LoraInjector.Apply(model, new LoraConfig { Rank = 8, Alpha = 16, TargetModules = AllProjections }, seed: seed);
        LoraTestKit.Randomize(model, LoraLinear.DefaultAdapter, seed: seed + 1, scale: 0.2);
    }

    [Theory]
    [InlineData("stories", 16)]
    [InlineData("stories", 4)]
    [InlineData("stories", 8)]
    [InlineData("wide", 16)]
    [InlineData("wide", 4)]
    [InlineData("wide", 8)]
    public void ActiveAdapterStepsGiveTheLibtorchLogitsAndIdsAndFollowTheAdapterSwitchedOffAndOn(string which, int bits)
    {
        using var model = Load(which == "wide" ? WideFolder.Value : SeededLlama.Folder, ScalarType.Float32, bits);
        using var noGrad = no_grad();
        Adapt(model, seed: 41);
        AssertTheAdapterMatters(model);
        Assert.Null(ManagedStepSupport.RejectsWeight(model.Layers[0][ProjectionKind.Q], model.ComputeDType));
        if (bits == 8) Assert.True(EightBitLoading.HasOutliers(model, Prompt, EightBitLoading.OutlierThreshold), "no outlier columns: the int8 decomposition is not exercised");

        const int steps = 30;
        using var torchCache = new KvCache(model.Config, 1, Prompt.Length + steps, model.ComputeDType, CPU);
        using var managedCache = new KvCache(model.Config, 1, Prompt.Length + steps, model.ComputeDType, CPU);
        var logits = model.Forward(tensor(Prompt, [1, Prompt.Length]), null, torchCache, lastOnly: true);
        using (model.Forward(tensor(Prompt, [1, Prompt.Length]), null, managedCache, lastOnly: true)) { }
        var torch = Assert.IsType<LibtorchDecodeStep>(DecodeStep.Choose(model, torchCache, allowManaged: false));
        var managed = Assert.IsType<ManagedDecodeStep>(DecodeStep.Choose(model, managedCache));
        for (int s = 0; s < steps; s++)
        {
            using var scope = NewDisposeScope();
            // steps 10–19 run the base alone, the others the adapter: both steps read the model as it is
            if (s == 10) LoraInjector.SetActiveAdapter(model, null);
            if (s == 20) LoraInjector.SetActiveAdapter(model, LoraLinear.DefaultAdapter);
            var next = tensor(new[] { logits.argmax(-1).item<long>() }, [1, 1]);
            logits = torch.Forward(next).MoveToOuterDisposeScope();
            var mine = managed.Forward(next);
            TensorAssert.Close(logits, mine, rtol: 1e-4, atol: 1e-4);
            Assert.Equal(logits.argmax(-1).item<long>(), mine.argmax(-1).item<long>());
        }
        Assert.Equal(steps, managed.Steps);
        for (int layer = 0; layer < model.Config.NumLayers; layer++)
        {
            var (tk, tv) = torchCache.LayerStorage(layer);
            var (mk, mv) = managedCache.LayerStorage(layer);
            TensorAssert.Close(tk, mk, rtol: 1e-4, atol: 1e-4);
            TensorAssert.Close(tv, mv, rtol: 1e-4, atol: 1e-4);
        }
    }

    /// <summary>DoRA's per-row output scale is not part of the step: a model with one active is libtorch's from the
    /// start, and a DoRA adapter activated during a managed decode hands the next step to libtorch (the managed count
    /// stays; the logits are libtorch's over a cache the managed step wrote one position of).</summary>
    [Fact]
    public void ADoraAdapterTakesTheLibtorchStepFromTheStartAndWhenActivatedMidDecode()
    {
        using var model = SeededLlama.Load();
        using var noGrad = no_grad();
        Adapt(model, seed: 47);
        LoraInjector.Apply(model, new LoraConfig { Rank = 4, Alpha = 8, UseDora = true, TargetModules = ["v_proj"] }, seed: 3, adapterName: "dora");
        LoraTestKit.Randomize(model, "dora", seed: 5, scale: 0.5);
        Assert.Contains("DoRA", ManagedStepSupport.RejectsWeight(model.Layers[0][ProjectionKind.V], model.ComputeDType));
        Assert.Null(SingleTokenDecoder.TryCreate(model));

        LoraInjector.SetActiveAdapter(model, LoraLinear.DefaultAdapter);
        using var cache = new KvCache(model.Config, 1, Prompt.Length + 4, model.ComputeDType, CPU);
        using var torchCache = new KvCache(model.Config, 1, Prompt.Length + 4, model.ComputeDType, CPU);
        using (model.Forward(tensor(Prompt, [1, Prompt.Length]), null, cache, lastOnly: true)) { }
        using (model.Forward(tensor(Prompt, [1, Prompt.Length]), null, torchCache, lastOnly: true)) { }
        var step = Assert.IsType<ManagedDecodeStep>(DecodeStep.Choose(model, cache));
        var torch = DecodeStep.Choose(model, torchCache, allowManaged: false);
        using var ids = tensor(new[] { 5L }, [1, 1]);
        using (var managed = step.Forward(ids))
        using (var expected = torch.Forward(ids))
            TensorAssert.Close(expected, managed, rtol: 1e-4, atol: 1e-4);
        Assert.Equal(1, step.Steps);
        LoraInjector.SetActiveAdapter(model, "dora");
        using (var handed = step.Forward(ids))
        using (var expected = torch.Forward(ids))
            TensorAssert.Close(expected, handed, rtol: 1e-4, atol: 1e-4);
        Assert.Equal(1, step.Steps);
    }

    /// <summary>The adapter's delta on the prompt's logits is far above the steps' tolerance, so a step that dropped it
    /// would fail.</summary>
    private static void AssertTheAdapterMatters(DecoderModel model)
    {
        using var scope = NewDisposeScope();
        var ids = tensor(Prompt, [1, Prompt.Length]);
        var adapted = model.Forward(ids, null, null, lastOnly: true);
        LoraInjector.SetActiveAdapter(model, null);
        var plain = model.Forward(ids, null, null, lastOnly: true);
        LoraInjector.SetActiveAdapter(model, LoraLinear.DefaultAdapter);
        Assert.True(TensorAssert.MaxDiff(adapted, plain) > 0.05, $"the adapter moves the logits by only {TensorAssert.MaxDiff(adapted, plain)}");
    }
}
