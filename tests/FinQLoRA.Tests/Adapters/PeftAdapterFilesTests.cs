using System.Text.Json.Nodes;
using FinQLoRA.Adapters;
using FinQLoRA.Formats.Checkpoints;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Adapters;

/// <summary>PEFT adapter folders: round trips, the config file's content, the size figures and one-line errors for bad
/// folders, on a seeded Llama with stories260K's shapes (no ../shared).</summary>
public sealed class PeftAdapterFilesTests : IDisposable
{
    private readonly TempFolder _temp = new();
    private string AdapterDir => _temp.PathOf("adapter"); // not yet there: Save creates it

    public void Dispose() => _temp.Dispose();

    private static readonly LoraConfig FinLoRA = new() { Rank = 4, Alpha = 32, Dropout = 0.1, TargetModules = ["q_proj", "v_proj", "k_proj"], BaseModelNameOrPath = "stories260K-hf" };

    /// <summary>Saves a randomized adapter of <paramref name="config"/> to AdapterDir and returns the logits it gives.</summary>
    private Tensor SaveRandomAdapter(LoraConfig config, ScalarType dtype = ScalarType.Float32)
    {
        using var model = SeededLlama.Load();
        LoraInjector.Apply(model, config);
        LoraTestKit.Randomize(model, "default", seed: 21);
        PeftAdapterFiles.Save(AdapterDir, model, config, dtype: dtype);
        return LoraTestKit.Logits(model);
    }

    [Fact]
    public void SaveThenLoadIntoAFreshModelGivesIdenticalLogits()
    {
        using var expected = SaveRandomAdapter(FinLoRA);
        using var fresh = SeededLlama.Load();
        var loaded = PeftAdapterFiles.Load(AdapterDir, fresh);
        Assert.Equal(4, loaded.Rank);
        Assert.Equal(32, loaded.Alpha);
        Assert.Equal(0.1, loaded.Dropout);
        Assert.Equal(["q_proj", "k_proj", "v_proj"], loaded.TargetModules); // module order (PEFT keeps a set)
        using var logits = LoraTestKit.Logits(fresh);
        Assert.True(logits.Equals(expected), $"max |diff| {TensorAssert.MaxDiff(logits, expected)}");
    }

    [Fact]
    public void DoraRsLoraRoundTrip()
    {
        var config = new LoraConfig { Rank = 2, Alpha = 8, UseDora = true, UseRsLora = true, TargetModules = ["all"] };
        using var expected = SaveRandomAdapter(config);
        using (var f = new SafetensorsFile(Path.Combine(AdapterDir, PeftAdapterFiles.WeightsFileName)))
        {
            var m = f.Entry("base_model.model.model.layers.2.mlp.down_proj.lora_magnitude_vector");
            Assert.Equal([64L], m.Shape);
            Assert.Equal(5 * 7 * 3, f.Entries.Count());
        }
        using var fresh = SeededLlama.Load();
        var loaded = PeftAdapterFiles.Load(AdapterDir, fresh);
        Assert.True(loaded.UseDora && loaded.UseRsLora);
        using var logits = LoraTestKit.Logits(fresh);
        Assert.True(logits.Equals(expected));
    }

    [Fact]
    public void FilesHavePeftsKeysShapesDtypeAndConfig()
    {
        using (SaveRandomAdapter(FinLoRA)) { }
        using (var f = new SafetensorsFile(Path.Combine(AdapterDir, PeftAdapterFiles.WeightsFileName)))
        {
            Assert.Equal(5 * 3 * 2, f.Entries.Count());
            Assert.All(f.Entries, e => Assert.Equal(ScalarType.Float32, e.DType));
            Assert.Equal([4L, 64L], f.Entry("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight").Shape);
            Assert.Equal([64L, 4L], f.Entry("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight").Shape);
            Assert.Equal([32L, 4L], f.Entry("base_model.model.model.layers.4.self_attn.k_proj.lora_B.weight").Shape); // 4 KV heads × 8
            Assert.Equal("pt", f.Metadata["format"]);
        }
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(AdapterDir, "adapter_config.json")))!.AsObject();
        // Every key of a real PEFT adapter_config.json (FinLoRA's sentiment_llama_3_1_8b_4bits_r4).
        string[] peftKeys =
        [
            "peft_type", "task_type", "base_model_name_or_path", "r", "lora_alpha", "lora_dropout", "target_modules", "bias",
            "fan_in_fan_out", "inference_mode", "init_lora_weights", "use_dora", "use_rslora", "lora_bias", "modules_to_save",
            "rank_pattern", "alpha_pattern", "layers_to_transform", "layers_pattern", "loftq_config", "megatron_config",
            "megatron_core", "layer_replication", "exclude_modules", "trainable_token_indices", "eva_config", "corda_config",
            "revision", "auto_mapping",
        ];
        Assert.Equal(peftKeys, json.Select(kv => kv.Key));
        Assert.Equal("LORA", (string?)json["peft_type"]);
        Assert.Equal("CAUSAL_LM", (string?)json["task_type"]);
        Assert.Equal("stories260K-hf", (string?)json["base_model_name_or_path"]);
        Assert.Equal("4", json["r"]!.ToJsonString());
        Assert.Equal("32", json["lora_alpha"]!.ToJsonString()); // an integer, as PEFT writes it
        Assert.Equal(0.1, (double)json["lora_dropout"]!);
        Assert.Equal("[\"q_proj\",\"k_proj\",\"v_proj\"]", json["target_modules"]!.ToJsonString());
        Assert.Equal("none", (string?)json["bias"]);
        Assert.False((bool)json["fan_in_fan_out"]!);
        Assert.True((bool)json["inference_mode"]!);
        Assert.False((bool)json["use_dora"]!);
        Assert.False((bool)json["use_rslora"]!);
    }

    [Fact]
    public void ReportedSizesMatchTheFileAndThePrediction()
    {
        using var model = SeededLlama.Load();
        LoraInjector.Apply(model, FinLoRA);
        var info = PeftAdapterFiles.Save(AdapterDir, model, FinLoRA);
        Assert.Equal(6400, info.Parameters);
        Assert.Equal(PeftAdapterSize.TensorBytes(model.Config, FinLoRA, 4), info.TensorBytes);
        Assert.Equal(new FileInfo(Path.Combine(AdapterDir, PeftAdapterFiles.WeightsFileName)).Length, info.AdapterBytes);
        Assert.InRange(info.AdapterBytes - info.TensorBytes, 8, 8192); // the JSON header

        var bf16 = PeftAdapterFiles.Save(AdapterDir, model, FinLoRA, dtype: ScalarType.BFloat16);
        Assert.Equal(PeftAdapterSize.TensorBytes(model.Config, FinLoRA, 2), bf16.TensorBytes);
    }

    [Fact]
    public void AcceptsAdapterNameInfixAndTargetModulesAsString()
    {
        using var expected = SaveRandomAdapter(FinLoRA);
        string weights = Path.Combine(AdapterDir, PeftAdapterFiles.WeightsFileName);
        var renamed = new List<KeyValuePair<string, Tensor>>();
        using (var f = new SafetensorsFile(weights))
            foreach (var e in f.Entries)
                renamed.Add(new(e.Name.Replace(".lora_A.weight", ".lora_A.default.weight").Replace(".lora_B.weight", ".lora_B.default.weight"), f.Read(e.Name)));
        SafetensorsFile.Write(weights, renamed);
        EditConfig(o => o["target_modules"] = @"model\.layers\.\d+\.self_attn\.(q|k|v)_proj");

        using var fresh = SeededLlama.Load();
        PeftAdapterFiles.Load(AdapterDir, fresh, adapterName: "sentiment");
        Assert.Equal("sentiment", LoraInjector.ActiveAdapter(fresh));
        using var logits = LoraTestKit.Logits(fresh);
        Assert.True(logits.Equals(expected));
    }

    private void EditConfig(Action<JsonObject> edit)
    {
        string path = Path.Combine(AdapterDir, "adapter_config.json");
        var o = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(o);
        File.WriteAllText(path, o.ToJsonString());
    }

    private UserInputException LoadFails(string? dir = null)
    {
        using var fresh = SeededLlama.Load();
        var e = Assert.Throws<UserInputException>(() => PeftAdapterFiles.Load(dir ?? AdapterDir, fresh));
        Assert.DoesNotContain('\n', e.Message);
        Assert.Empty(LoraInjector.Wrapped(fresh)); // a rejected folder leaves the model untouched
        return e;
    }

    [Fact]
    public void BadFoldersGiveOneLineErrors()
    {
        Assert.Contains("adapter folder not found", LoadFails(Path.Combine(AdapterDir, "nope")).Message);

        using (SaveRandomAdapter(FinLoRA)) { }
        string weights = Path.Combine(AdapterDir, PeftAdapterFiles.WeightsFileName);
        string config = Path.Combine(AdapterDir, "adapter_config.json");
        string configText = File.ReadAllText(config);

        EditConfig(o => o["r"] = 8); // wrong r
        var e = LoadFails();
        Assert.Contains("lora_A.weight' has shape [4, 64] but r = 8", e.Message);

        File.WriteAllText(config, configText);
        EditConfig(o => o["target_modules"] = new JsonArray("q_proj", "v_proj"));
        Assert.Contains("targets k_proj, which adapter_config.json does not list", LoadFails().Message);

        File.WriteAllText(config, configText);
        EditConfig(o => o["target_modules"] = new JsonArray("q_proj", "attn"));
        Assert.Contains("unknown target module(s) 'attn'", LoadFails().Message);

        File.WriteAllText(config, configText);
        EditConfig(o => o["peft_type"] = "IA3");
        Assert.Contains("only LORA adapters", LoadFails().Message);

        File.WriteAllText(config, configText);
        var tensors = new List<KeyValuePair<string, Tensor>>();
        using (var f = new SafetensorsFile(weights))
        {
            foreach (var entry in f.Entries) tensors.Add(new(entry.Name, f.Read(entry.Name)));
            byte[] original = File.ReadAllBytes(weights);

            // shape mismatch: a k_proj B with q_proj's output width
            var withBadShape = tensors.Select(t => t.Key.EndsWith("layers.1.self_attn.k_proj.lora_B.weight") ? new KeyValuePair<string, Tensor>(t.Key, zeros(64, 4)) : t).ToList();
            SafetensorsFile.Write(weights, withBadShape);
            Assert.Contains("layers.1.self_attn.k_proj.lora_B.weight' has shape [64, 4]", LoadFails().Message);

            SafetensorsFile.Write(weights, tensors.Append(new("base_model.model.lm_head.lora_A.weight", zeros(4, 64))));
            Assert.Contains("unexpected tensor 'base_model.model.lm_head.lora_A.weight'", LoadFails().Message);

            SafetensorsFile.Write(weights, tensors.Where(t => !t.Key.Contains("layers.3.self_attn.v_proj.lora_A")));
            Assert.Contains("model.layers.3.self_attn.v_proj has no lora_A tensor", LoadFails().Message);

            SafetensorsFile.Write(weights, tensors.Select(t => new KeyValuePair<string, Tensor>(t.Key.Replace("layers.4.", "layers.9."), t.Value)));
            Assert.Contains("layer 9 but the model has 5 layers", LoadFails().Message);

            File.WriteAllBytes(weights, original);
        }

        File.Delete(weights);
        Assert.Contains("adapter_model.safetensors: not found", LoadFails().Message);
        File.Delete(config);
        Assert.Contains("adapter_config.json: not found", LoadFails().Message);
    }

    [Fact]
    public void LoadingTwiceUnderOneNameIsRejected()
    {
        using (SaveRandomAdapter(FinLoRA)) { }
        using var fresh = SeededLlama.Load();
        PeftAdapterFiles.Load(AdapterDir, fresh);
        var e = Assert.Throws<UserInputException>(() => PeftAdapterFiles.Load(AdapterDir, fresh));
        Assert.Contains("already has an adapter named 'default'", e.Message);
        PeftAdapterFiles.Load(AdapterDir, fresh, adapterName: "copy"); // another name is fine
        Assert.Equal(["default", "copy"], LoraInjector.AdapterNames(fresh));
    }
}
