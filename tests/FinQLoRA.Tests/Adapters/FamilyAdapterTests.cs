using System.Text.Json.Nodes;
using FinQLoRA.Adapters;
using FinQLoRA.Formats.Checkpoints;
using FinQLoRA.Models;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Adapters;

/// <summary>
/// LoRA on every family (issue 22): PEFT's target names per family (all-linear = the family's projections, Phi-3's
/// fused qkv_proj and gate_up_proj), names a family lacks refused with its module names, and a PEFT adapter layout
/// fixture per family (tests/fixtures/peft/families) that loads onto the family's seeded model, computes PEFT's LoRA,
/// rsLoRA and DoRA on fused and biased projections (checked against the formulas on the checkpoint's weights), merges
/// to the same logits, and saves back byte for byte.
/// </summary>
public sealed class FamilyAdapterTests : IDisposable
{
    private readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    /// <summary>Each family's block projections in module order, as its transformers modeling code declares them.</summary>
    public static TheoryData<string, string[]> AllLinear => new()
    {
        { "llama3.2", ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] },
        { "mistral", ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] },
        { "qwen2", ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] },
        { "qwen3", ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] },
        { "gemma2", ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] },
        { "gemma3", ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] },
        { "phi3", ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"] },
    };

    private DecoderModel LoadFamily(string family) => SeededFamilies.Load(SeededFamilies.Write(_temp.PathOf("model-" + family), family));

    [Theory]
    [MemberData(nameof(AllLinear))]
    public void AllLinearWrapsTheFamilysProjectionsAndSavesThemAsTargetModules(string family, string[] expected)
    {
        using var model = LoadFamily(family);
        var config = new LoraConfig { Rank = 4, Alpha = 8, TargetModules = ["all-linear"] };
        var summary = LoraInjector.Apply(model, config, seed: 1);
        Assert.Equal(model.Layers.Count * expected.Length, summary.WrappedModules);
        for (int i = 0; i < model.Layers.Count; i++)
            Assert.Equal(expected, LoraInjector.Wrapped(model).Where(w => w.Layer == i).Select(w => ModelLayout.ModuleName(w.Projection)));
        string dir = _temp.PathOf("all-" + family);
        PeftAdapterFiles.Save(dir, model, config);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, PeftAdapterConfig.FileName)))!.AsObject();
        Assert.Equal(expected, json["target_modules"]!.AsArray().Select(t => t!.GetValue<string>()));
    }

    [Fact]
    public void NamesTheFamilyLacksAreRefusedWithItsModuleNames()
    {
        using var phi = LoadFamily("phi3");
        var e = Assert.Throws<UserInputException>(() => LoraInjector.Apply(phi, new LoraConfig { TargetModules = ["q_proj", "v_proj", "o_proj"] }));
        Assert.Equal("LoRA config: Phi3ForCausalLM (phi3) models have no q_proj, v_proj; their projections are qkv_proj, o_proj, gate_up_proj, down_proj (or \"all-linear\" for all of them)", e.Message);
        Assert.Empty(LoraInjector.Wrapped(phi)); // nothing was wrapped

        using var qwen = LoadFamily("qwen2");
        e = Assert.Throws<UserInputException>(() => LoraInjector.Apply(qwen, new LoraConfig { TargetModules = ["qkv_proj", "gate_up_proj"] }));
        Assert.Contains("Qwen2ForCausalLM (qwen2) models have no qkv_proj, gate_up_proj; their projections are q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj", e.Message);
        e = Assert.Throws<UserInputException>(() => LoraInjector.Apply(qwen, new LoraConfig { TargetModules = ["query_key_value"] }));
        Assert.Contains("unknown target module(s) 'query_key_value'; valid names are q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj", e.Message);

        // An adapter made for one family names its modules in adapter_config.json: refused on the other before any change.
        string phiAdapter = _temp.PathOf("phi-adapter");
        new PeftFamilyFixture("phi3").WriteAdapter(phiAdapter, seed: 1);
        e = Assert.Throws<UserInputException>(() => PeftAdapterFiles.Load(phiAdapter, qwen));
        Assert.Contains("adapter_config.json: Qwen2ForCausalLM (qwen2) models have no qkv_proj, gate_up_proj", e.Message);
        Assert.Empty(LoraInjector.Wrapped(qwen));

        // The same when only the tensors tell (target_modules "all-linear", as older files and regex targets leave it).
        string llamaAdapter = _temp.PathOf("llama-adapter");
        new PeftFamilyFixture("llama3.2").WriteAdapter(llamaAdapter, seed: 1);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(llamaAdapter, PeftAdapterConfig.FileName)))!.AsObject();
        config["target_modules"] = "all-linear";
        File.WriteAllText(Path.Combine(llamaAdapter, PeftAdapterConfig.FileName), config.ToJsonString());
        e = Assert.Throws<UserInputException>(() => PeftAdapterFiles.Load(llamaAdapter, phi));
        Assert.Contains("which Phi3ForCausalLM (phi3) models do not have (their projections: qkv_proj, o_proj, gate_up_proj, down_proj)", e.Message);
        Assert.Empty(LoraInjector.Wrapped(phi));
    }

    /// <summary>
    /// The fixture's adapter on the family's seeded model: every tensor lands on the module its PEFT name says; each
    /// adapted projection of layer 0 computes PEFT's formula on the checkpoint's weight (LoRA: W₀x + s·BAx; DoRA:
    /// (m/n)(W₀x + s·BAx) with n the row norms of W₀ + s·BA, the bias not part of them); merging gives the same logits
    /// (the bias stays outside the DoRA scale, as PEFT adds it); and saving gives the fixture's bytes back.
    /// </summary>
    [Theory]
    [MemberData(nameof(SeededFamilies.Names), MemberType = typeof(SeededFamilies))]
    public void PeftFixtureLoadsComputesPeftsFormulaMergesAndSavesBackByteForByte(string family)
    {
        var fixture = new PeftFamilyFixture(family);
        string modelDir = SeededFamilies.Write(_temp.PathOf("model"), family);
        string adapterDir = _temp.PathOf("fixture");
        var values = fixture.WriteAdapter(adapterDir, seed: 22);
        using var model = SeededFamilies.Load(modelDir);
        using var baseLogits = LoraTestKit.Logits(model);

        var loaded = PeftAdapterFiles.Load(adapterDir, model);
        Assert.Equal((fixture.Rank, fixture.Dora), (loaded.Rank, loaded.UseDora));
        Assert.Equal(fixture.Entries.Select(e => (e.Layer, e.Module)).Distinct().Count(), LoraInjector.Wrapped(model).Count());
        using (no_grad())
        {
            foreach (var e in fixture.Entries)
            {
                var lora = Assert.IsType<LoraLinear>(model.Layers[e.Layer][ModelLayout.ParseModuleName(e.Module)!.Value]);
                var adapter = lora.Adapters[LoraLinear.DefaultAdapter];
                var t = e.Part switch { "lora_A.weight" => adapter.A, "lora_B.weight" => adapter.B, _ => adapter.Magnitude! };
                Assert.Equal(e.Shape, t.shape);
                Assert.Equal(values[e.Name], t.data<float>().ToArray());
            }
            using var checkpoint = new SafetensorsFile(Path.Combine(modelDir, "model.safetensors"));
            using var gen = new Generator(5);
            foreach (var module in fixture.Entries.Where(e => e.Layer == 0).Select(e => (e.Section, e.Module)).Distinct())
            {
                using var scope = NewDisposeScope();
                string key = $"base_model.model.model.layers.0.{module.Section}.{module.Module}";
                var w = checkpoint.Read($"model.layers.0.{module.Section}.{module.Module}.weight").to(ScalarType.Float32);
                Tensor Get(string part) => FromFixture(fixture, values, $"{key}.{part}");
                var delta = Get("lora_B.weight").matmul(Get("lora_A.weight")) * fixture.Scaling;
                var x = randn([3, w.shape[1]], generator: gen);
                var expected = nn.functional.linear(x, w + delta);
                if (fixture.Dora) expected = expected * (Get("lora_magnitude_vector") / (w + delta).pow(2).sum(1).sqrt());
                var lora = (LoraLinear)model.Layers[0][ModelLayout.ParseModuleName(module.Module)!.Value];
                TensorAssert.MaxDiffAtMost(expected, lora.forward(x), 1e-5, $"{family} {module.Module}");
            }
        }
        using var adapted = LoraTestKit.Logits(model);
        Assert.True(TensorAssert.MaxDiff(adapted, baseLogits) > 1e-2, "the adapter changes nothing; the checks below could not fail");

        string saved = _temp.PathOf("saved");
        PeftAdapterFiles.Save(saved, model, loaded);
        Assert.Equal(File.ReadAllBytes(Path.Combine(adapterDir, PeftFamilyFixture.WeightsFile)), File.ReadAllBytes(Path.Combine(saved, PeftFamilyFixture.WeightsFile)));
        // adapter_config.json: every key we write says what PEFT's file says (target_modules as the set PEFT keeps)
        var ours = JsonNode.Parse(File.ReadAllText(Path.Combine(saved, PeftAdapterConfig.FileName)))!.AsObject();
        Assert.Equal(fixture.TargetModules.Order(), ours["target_modules"]!.AsArray().Select(t => t!.GetValue<string>()).Order());
        foreach (var (k, v) in ours)
            if (k is not ("target_modules" or "lora_dropout") && fixture.Config.ContainsKey(k))
                Assert.True(JsonNode.DeepEquals(v, fixture.Config[k]), $"{k}: ours {v?.ToJsonString()}, PEFT's {fixture.Config[k]?.ToJsonString()}");
        Assert.Equal(fixture.Config["lora_dropout"]!.GetValue<double>(), ours["lora_dropout"]!.GetValue<double>()); // 0.0 and 0 are one value

        int merged = LoraMerger.MergeAndUnload(model);
        Assert.Equal(fixture.Entries.Select(e => (e.Layer, e.Module)).Distinct().Count(), merged);
        using var mergedLogits = LoraTestKit.Logits(model);
        TensorAssert.MaxDiffAtMost(adapted, mergedLogits, 1e-4, $"{family}: merged vs adapted");
    }

    /// <summary>DoRA's magnitude starts at the row norms of the base weight alone (PEFT's get_weight_norm on
    /// base_layer.weight), on a biased projection too: the bias is not a column of W₀ (Llama with attention_bias, Qwen2).</summary>
    [Theory]
    [InlineData("llama3.2", ProjectionKind.O)]
    [InlineData("qwen2", ProjectionKind.K)]
    public void DoraMagnitudeIsTheRowNormOfTheWeightWithoutTheBias(string family, ProjectionKind projection)
    {
        string modelDir = SeededFamilies.Write(_temp.PathOf("model"), family);
        using var model = SeededFamilies.Load(modelDir);
        LoraInjector.Apply(model, new LoraConfig { Rank = 2, Alpha = 4, UseDora = true, UseRsLora = true, TargetModules = ["all-linear"] }, seed: 3);
        using var checkpoint = new SafetensorsFile(Path.Combine(modelDir, "model.safetensors"));
        using var scope = NewDisposeScope();
        string name = ModelLayout.ModulePath(1, projection);
        var w = checkpoint.Read(name + ".weight").to(ScalarType.Float32);
        var bias = checkpoint.Read(name + ".bias").to(ScalarType.Float32);
        Assert.True(bias.abs().max().item<float>() > 0.01f, "the seeded model's bias is zero; the check could not fail");
        var m = ((LoraLinear)model.Layers[1][projection]).Adapters[LoraLinear.DefaultAdapter].Magnitude!;
        TensorAssert.MaxDiffAtMost(w.pow(2).sum(1).sqrt(), m, 1e-6, "m = ‖W₀‖ per row");
        Assert.Equal(4 / Math.Sqrt(2), ((LoraLinear)model.Layers[1][projection]).Adapters[LoraLinear.DefaultAdapter].Scaling, 12);
    }

    private static Tensor FromFixture(PeftFamilyFixture fixture, Dictionary<string, float[]> values, string name) =>
        tensor(values[name], fixture.Entries.Single(e => e.Name == name).Shape);
}
