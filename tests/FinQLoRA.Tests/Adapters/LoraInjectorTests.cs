using FinQLoRA.Models.Families;
using FinQLoRA.Adapters;
using FinQLoRA.Models;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Adapters;

/// <summary>Adapters on a seeded random Llama with stories260K's shapes (no ../shared): merge equivalence, what trains,
/// PEFT's printout, several adapters.</summary>
public sealed class LoraInjectorTests
{
    [Fact]
    public void LoraForwardEqualsMergedForward()
    {
        using var model = SeededLlama.Load();
        using var baseLogits = LoraTestKit.Logits(model);
        LoraInjector.Apply(model, new LoraConfig { Rank = 4, Alpha = 32, TargetModules = ["all"] }, seed: 1);
        LoraTestKit.Randomize(model, "default", seed: 2);
        using var loraLogits = LoraTestKit.Logits(model);
        Assert.True(TensorAssert.MaxDiff(loraLogits, baseLogits) > 1e-2, "the random adapter should change the logits");

        int merged = LoraMerger.MergeAndUnload(model);
        Assert.Equal(5 * 7, merged);
        Assert.All(model.Config.Family.Projections, p => Assert.IsType<DenseLinear>(LoraInjector.Owner(model.Layers[0], p)[p]));
        using var mergedLogits = LoraTestKit.Logits(model);
        double diff = TensorAssert.RelativeMaxDiff(mergedLogits, loraLogits);
        Assert.True(diff < 1e-5, $"LoRA vs merged max |diff| / max |logit| = {diff}");
    }

    /// <summary>Adapters added to a model in inference mode must not drop out: greedy outputs are repeatable.</summary>
    [Fact]
    public void AdaptersAddedToAnEvalModelDoNotUseDropout()
    {
        using var model = SeededLlama.Load();
        Assert.False(model.training);
        LoraInjector.Apply(model, new LoraConfig { Rank = 4, Alpha = 32, Dropout = 0.5 }, seed: 1);
        LoraTestKit.Randomize(model, "default", seed: 2);
        Assert.All(LoraInjector.Wrapped(model), w => Assert.False(w.Lora.training));
        using var a = LoraTestKit.Logits(model);
        using var b = LoraTestKit.Logits(model);
        Assert.Equal(0.0, TensorAssert.MaxDiff(a, b));
    }

    [Fact]
    public void DoraForwardEqualsMergedForward()
    {
        using var model = SeededLlama.Load();
        using var baseLogits = LoraTestKit.Logits(model);
        LoraInjector.Apply(model, new LoraConfig { Rank = 4, Alpha = 8, UseDora = true, TargetModules = ["q_proj", "v_proj", "down_proj"] }, seed: 1);
        using (var fresh = LoraTestKit.Logits(model))
            Assert.True(TensorAssert.MaxDiff(fresh, baseLogits) < 1e-5, "a fresh DoRA adapter (m = ‖W‖, B = 0) must not change the output");
        LoraTestKit.Randomize(model, "default", seed: 3);
        using var doraLogits = LoraTestKit.Logits(model);
        Assert.True(TensorAssert.MaxDiff(doraLogits, baseLogits) > 1e-2);
        LoraMerger.MergeAndUnload(model);
        using var mergedLogits = LoraTestKit.Logits(model);
        double diff = TensorAssert.RelativeMaxDiff(mergedLogits, doraLogits);
        Assert.True(diff < 1e-5, $"DoRA vs merged max |diff| / max |logit| = {diff}");
    }

    [Fact]
    public void FreshAdapterGivesBaseOutput()
    {
        using var model = SeededLlama.Load();
        using var baseLogits = LoraTestKit.Logits(model);
        LoraInjector.Apply(model, new LoraConfig { Rank = 8, Alpha = 16, TargetModules = ["all"] });
        using var loraLogits = LoraTestKit.Logits(model);
        Assert.True(loraLogits.Equals(baseLogits));
    }

    [Fact]
    public void GradientsReachOnlyAdapterTensors()
    {
        using var model = SeededLlama.Load();
        LoraInjector.Apply(model, new LoraConfig { Rank = 4, Alpha = 32, UseDora = true, TargetModules = ["q_proj", "k_proj", "v_proj", "gate_proj"] });
        LoraTestKit.Randomize(model, "default", seed: 5);
        var adapterParams = LoraInjector.AdapterParameters(model).ToList();
        Assert.Equal(5 * 4 * 3, adapterParams.Count); // A, B, m per projection
        Assert.Contains(adapterParams, p => p.Name == "model.layers.4.mlp.gate_proj.lora_magnitude_vector");

        model.train();
        using var ids = LoraTestKit.Ids();
        using var logits = model.Forward(ids);
        using var loss = nn.functional.cross_entropy(logits[.., ..^1].reshape(-1, 512), ids[.., 1..].reshape(-1));
        loss.backward();

        var adapterSet = adapterParams.Select(p => p.P.Handle).ToHashSet();
        foreach (var (name, p) in model.named_parameters())
        {
            if (adapterSet.Contains(p.Handle))
            {
                Assert.True(p.requires_grad, name);
                Assert.NotNull(p.grad);
                Assert.True(p.grad!.abs().sum().item<float>() > 0, $"{name} got a zero gradient");
            }
            else
            {
                Assert.False(p.requires_grad, $"{name} should be frozen");
                Assert.Null(p.grad);
            }
        }
    }

    [Fact]
    public void PrintTrainableParametersMatchesPeftsFormat()
    {
        using var model = SeededLlama.Load();
        var summary = LoraInjector.Apply(model, new LoraConfig { Rank = 4, Alpha = 32, TargetModules = ["q_proj", "k_proj", "v_proj"] });
        // stories260K's shapes: 292,800 weights; per layer q 4·(64+64) + k 4·(64+32) + v 4·(64+32) = 1,280, × 5 layers = 6,400.
        const string expected = "trainable params: 6,400 || all params: 299,200 || trainable%: 2.1390";
        Assert.Equal(expected, LoraInjector.PrintTrainableParameters(model));
        Assert.Equal(expected, summary.ToString());
        Assert.Equal(15, summary.WrappedModules);
        Assert.Equal("trainable params: 2,359,296 || all params: 8,032,620,544 || trainable%: 0.0294",
            LoraInjector.FormatTrainable(2_359_296, 8_030_261_248 + 2_359_296));
    }

    [Fact]
    public void UnknownTargetNamesAreRejectedWithTheValidNames()
    {
        using var model = SeededLlama.Load();
        var e = Assert.Throws<UserInputException>(() => LoraInjector.Apply(model, new LoraConfig { TargetModules = ["q_proj", "lm_head", "query"] }));
        Assert.Contains("'lm_head', 'query'", e.Message);
        Assert.Contains("q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Empty(LoraInjector.Wrapped(model)); // nothing was wrapped
    }

    [Fact]
    public void SeveralAdaptersSwitchAndUnload()
    {
        using var model = SeededLlama.Load();
        using var baseLogits = LoraTestKit.Logits(model);
        LoraInjector.Apply(model, new LoraConfig { Rank = 4, Alpha = 32, TargetModules = ["q_proj", "v_proj"] }, seed: 1, adapterName: "sentiment");
        LoraTestKit.Randomize(model, "sentiment", seed: 10);
        using var sentiment = LoraTestKit.Logits(model);
        LoraInjector.Apply(model, new LoraConfig { Rank = 2, Alpha = 4, TargetModules = ["all"] }, seed: 2, adapterName: "ner");
        LoraTestKit.Randomize(model, "ner", seed: 11);
        using var ner = LoraTestKit.Logits(model);

        Assert.Equal(["sentiment", "ner"], LoraInjector.AdapterNames(model));
        Assert.Equal("ner", LoraInjector.ActiveAdapter(model));
        Assert.True(TensorAssert.MaxDiff(ner, sentiment) > 1e-2);
        Assert.All(LoraInjector.AdapterParameters(model, "sentiment"), p => Assert.False(p.P.requires_grad)); // only the active one trains

        LoraInjector.SetActiveAdapter(model, "sentiment");
        using (var again = LoraTestKit.Logits(model)) Assert.True(again.Equals(sentiment));
        LoraInjector.SetActiveAdapter(model, null);
        using (var none = LoraTestKit.Logits(model)) Assert.True(none.Equals(baseLogits));
        var e = Assert.Throws<UserInputException>(() => LoraInjector.SetActiveAdapter(model, "xbrl"));
        Assert.Contains("sentiment, ner", e.Message);

        LoraInjector.DeleteAdapter(model, "ner");
        Assert.IsType<DenseLinear>(model.Layers[0].Mlp[ProjectionKind.Gate]); // only "ner" wrapped it
        Assert.IsType<LoraLinear>(model.Layers[0].Attention[ProjectionKind.Q]);
        LoraInjector.SetActiveAdapter(model, "sentiment");
        using (var afterDelete = LoraTestKit.Logits(model)) Assert.True(afterDelete.Equals(sentiment));

        LoraInjector.Unload(model);
        Assert.Empty(LoraInjector.Wrapped(model));
        using (var unloaded = LoraTestKit.Logits(model)) Assert.True(unloaded.Equals(baseLogits));
    }

    [Fact]
    public void ExpectedAdapterSizeForLlama31_8B()
    {
        var llama8b = ModelPresets.Get("llama-3.1-8b")!;
        var finlora = new LoraConfig { Rank = 4, Alpha = 32, TargetModules = ["q_proj", "k_proj", "v_proj"] };
        Assert.Equal(2_359_296, PeftAdapterSize.ParameterCount(llama8b, finlora));
        Assert.Equal(4.5 * 1024 * 1024, PeftAdapterSize.TensorBytes(llama8b, finlora, bytesPerValue: 2)); // FinLoRA's saved bf16
        Assert.Equal(9.0 * 1024 * 1024, PeftAdapterSize.TensorBytes(llama8b, finlora, bytesPerValue: 4)); // PEFT's default F32
        Assert.Equal(4_718_592, PeftAdapterSize.ParameterCount(llama8b, finlora with { Rank = 8 }));
        Assert.Equal(11_141_120, PeftAdapterSize.ParameterCount(ModelPresets.Get("llama-3.1-70b")!, finlora));
        Assert.Equal("2,359,296 params: 9.00 MiB as F32, 4.50 MiB as BF16", PeftAdapterSize.Describe(llama8b, finlora));
    }
}
