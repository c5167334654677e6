using System.Collections;
using System.Reflection;
using System.Text.Json.Nodes;
using FinQLoRA.Formats.Checkpoints;
using FinQLoRA.Models;
using FinQLoRA.Models.Families;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Models;

/// <summary>
/// Loading each family's HF checkpoint: sharded as transformers writes it (model-0000k-of-0000N.safetensors and
/// model.safetensors.index.json) to the same logits as one file; a missing bias or q/k-norm tensor, or a wrong shape,
/// refused in one line naming the tensor; model types FinQLoRA does not run refused by name with the list of those it
/// does; and each family's architecture switches surviving config.json → ModelConfig → ToJson → ModelConfig.
/// </summary>
public sealed class FamilyCheckpointTests
{
    private static readonly long[] Prompt = [1, 40, 77, 300, 12, 5, 99, 410, 23, 64, 7, 250, 31, 8];

    [Theory]
    [MemberData(nameof(SeededFamilies.Names), MemberType = typeof(SeededFamilies))]
    public void ShardedCheckpointLoadsToTheLogitsOfTheSingleFile(string family)
    {
        using var dir = new TempFolder();
        string single = SeededFamilies.Write(Path.Combine(dir.Path, "single"), family);
        string sharded = Path.Combine(dir.Path, "sharded");
        Directory.CreateDirectory(sharded);
        foreach (string f in Directory.GetFiles(single)) File.Copy(f, Path.Combine(sharded, Path.GetFileName(f)));
        int shards = family.Length % 2 == 0 ? 2 : 3;
        Reshard(sharded, shards);
        Assert.False(File.Exists(Path.Combine(sharded, "model.safetensors")));
        Assert.Equal(shards, Directory.GetFiles(sharded, "model-*-of-*.safetensors").Length);

        using var a = SeededFamilies.Load(single);
        using var b = SeededFamilies.Load(sharded);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var ids = tensor(Prompt).unsqueeze(0);
        TensorAssert.BitIdentical(a.Forward(ids), b.Forward(ids), $"{family}: sharded vs single file");
    }

    public static TheoryData<string, string> MissingTensors => new()
    {
        { "llama3.2", "model.layers.0.self_attn.o_proj.bias" },
        { "qwen2", "model.layers.1.self_attn.k_proj.bias" },
        { "qwen3", "model.layers.2.self_attn.q_norm.weight" },
        { "gemma2", "model.layers.3.post_feedforward_layernorm.weight" },
        { "gemma3", "model.layers.0.self_attn.k_norm.weight" },
        { "phi3", "model.layers.0.self_attn.qkv_proj.weight" },
        { "mistral", "lm_head.weight" },
    };

    [Theory]
    [MemberData(nameof(MissingTensors))]
    public void MissingTensorIsNamedInOneLine(string family, string tensorName)
    {
        using var dir = new TempFolder();
        string folder = SeededFamilies.Write(dir.Path, family);
        RewriteTensors(folder, all => { Assert.True(all.Remove(tensorName), $"the seeded {family} model has no {tensorName}"); });
        var e = Assert.Throws<UserInputException>(() => SeededFamilies.Load(folder).Dispose());
        Assert.Contains($"'{tensorName}'", e.Message);
        Assert.Contains("missing", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    public static TheoryData<string, string, long[]> WrongShapes => new()
    {
        { "qwen2", "model.layers.0.self_attn.q_proj.bias", [65] },
        { "qwen3", "model.layers.1.self_attn.k_norm.weight", [16] },
        { "gemma3", "model.layers.5.self_attn.q_norm.weight", [24] },
        { "phi3", "model.layers.0.mlp.gate_up_proj.weight", [96, 64] },
        { "llama3.2", "model.layers.3.self_attn.v_proj.bias", [64] },
    };

    [Theory]
    [MemberData(nameof(WrongShapes))]
    public void WrongShapeIsNamedInOneLine(string family, string tensorName, long[] shape)
    {
        using var dir = new TempFolder();
        string folder = SeededFamilies.Write(dir.Path, family);
        RewriteTensors(folder, all =>
        {
            Assert.False(all[tensorName].shape.SequenceEqual(shape), "the shape must be wrong");
            all[tensorName] = randn(shape);
        });
        var e = Assert.Throws<UserInputException>(() => SeededFamilies.Load(folder).Dispose());
        Assert.Contains($"'{tensorName}'", e.Message);
        Assert.Contains($"[{string.Join(", ", shape)}]", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Theory]
    [InlineData("gemma3", "Gemma3ForConditionalGeneration", "Gemma3ForConditionalGeneration")]
    [InlineData("mixtral", "MixtralForCausalLM", "MixtralForCausalLM")]
    [InlineData("mixtral", null, "mixtral")]
    [InlineData("phi", "PhiForCausalLM", "PhiForCausalLM")]
    public void UnsupportedModelTypeIsRefusedByNameListingTheFamilies(string modelType, string? architecture, string named)
    {
        using var dir = new TempFolder();
        string folder = SeededFamilies.Write(dir.Path, "llama3.2");
        var json = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "config.json")))!;
        json["model_type"] = modelType;
        if (architecture is null) json.Remove("architectures");
        else json["architectures"] = new JsonArray(architecture);
        File.WriteAllText(Path.Combine(folder, "config.json"), json.ToJsonString());
        var e = Assert.Throws<UserInputException>(() => SeededFamilies.Load(folder).Dispose());
        Assert.Contains($"'{named}'", e.Message);
        Assert.Contains("not supported", e.Message);
        foreach (var f in ModelFamilies.All)
        {
            Assert.Contains(f.HfArchitecture, e.Message);
            Assert.Contains(f.ModelType, e.Message);
        }
        Assert.DoesNotContain('\n', e.Message);
    }

    [Theory]
    [MemberData(nameof(SeededFamilies.Names), MemberType = typeof(SeededFamilies))]
    public void ConfigRoundTripsThroughToJsonOnEveryField(string family)
    {
        using var dir = new TempFolder();
        File.WriteAllText(dir.PathOf("config.json"), SeededFamilies.ConfigJson[family].ToJsonString());
        var loaded = ModelConfig.Load(dir.Path);
        var again = ModelConfig.FromJson((JsonObject)JsonNode.Parse(loaded.ToJson().ToJsonString())!, "round trip");
        AssertSameProperties(loaded, again, family);
        Assert.Equal(loaded.ToJson().ToJsonString(), again.ToJson().ToJsonString());
    }

    /// <summary>Every public property of two records equal, lists element by element and nested records (RoPE
    /// scaling) property by property: record equality compares lists by reference.</summary>
    private static void AssertSameProperties(object? expected, object? actual, string path)
    {
        if (expected is null || actual is null)
        {
            Assert.True(expected is null && actual is null, $"{path}: {expected ?? "null"} vs {actual ?? "null"}");
            return;
        }
        switch (expected)
        {
            case string or ValueType or ModelFamily:
                Assert.True(expected.Equals(actual), $"{path}: {expected} vs {actual}");
                return;
            case JsonNode node:
                Assert.True(JsonNode.DeepEquals(node, (JsonNode)actual), $"{path}: {node.ToJsonString()} vs {((JsonNode)actual).ToJsonString()}");
                return;
            case IEnumerable list:
                var a = list.Cast<object?>().ToList();
                var b = ((IEnumerable)actual).Cast<object?>().ToList();
                Assert.True(a.Count == b.Count, $"{path}: {a.Count} entries vs {b.Count}");
                for (int i = 0; i < a.Count; i++) AssertSameProperties(a[i], b[i], $"{path}[{i}]");
                return;
        }
        foreach (var p in expected.GetType().GetProperties(BindingFlags.Public | BindingFlags.Instance))
            if (p.GetIndexParameters().Length == 0)
                AssertSameProperties(p.GetValue(expected), p.GetValue(actual), $"{path}.{p.Name}");
    }

    /// <summary>Splits model.safetensors into <paramref name="shards"/> files of consecutive tensors (in name order,
    /// as transformers fills one shard before the next) with the index transformers writes beside them.</summary>
    private static void Reshard(string folder, int shards)
    {
        string single = Path.Combine(folder, "model.safetensors");
        var weightMap = new JsonObject();
        long totalSize = 0;
        using (var file = new SafetensorsFile(single))
        {
            var names = file.Entries.Select(e => e.Name).Order(StringComparer.Ordinal).ToList();
            int per = (names.Count + shards - 1) / shards;
            for (int s = 0; s < shards; s++)
            {
                using var scope = NewDisposeScope();
                string shard = $"model-{s + 1:D5}-of-{shards:D5}.safetensors";
                var tensors = names.Skip(s * per).Take(per).ToDictionary(n => n, n => file.Read(n));
                Assert.NotEmpty(tensors);
                SafetensorsFile.Write(Path.Combine(folder, shard), tensors, new Dictionary<string, string> { ["format"] = "pt" });
                foreach (var (name, t) in tensors)
                {
                    weightMap[name] = shard;
                    totalSize += t.numel() * t.element_size();
                }
            }
        }
        File.Delete(single);
        var index = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = totalSize }, ["weight_map"] = weightMap };
        File.WriteAllText(Path.Combine(folder, "model.safetensors.index.json"), index.ToJsonString());
    }

    /// <summary>Reads every tensor of model.safetensors, lets <paramref name="edit"/> change the set, writes it back.</summary>
    private static void RewriteTensors(string folder, Action<Dictionary<string, Tensor>> edit)
    {
        string path = Path.Combine(folder, "model.safetensors");
        using var scope = NewDisposeScope();
        Dictionary<string, Tensor> all;
        using (var file = new SafetensorsFile(path))
            all = file.Entries.ToDictionary(e => e.Name, e => file.Read(e.Name));
        edit(all);
        SafetensorsFile.Write(path, all, new Dictionary<string, string> { ["format"] = "pt" });
    }
}
