using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using FinQLoRA.Adapters;
using FinQLoRA.Formats.Checkpoints;
using FinQLoRA.Tests.Cli;
using FinQLoRA.Tests.Support;
using FinQLoRA.Training;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Privacy;

/// <summary>
/// <c>finqlora adapters average</c> on adapters trained at two "sites": for FFA-LoRA adapters the averaged adapter's
/// ΔW = s·B̄·A equals the weighted average of the sites' ΔW (the exactness FFA-LoRA promises); for ordinary LoRA it does
/// not, and the command says so. The output is a PEFT folder whose config and tensor names (read with System.Text.Json
/// from the safetensors header, not with our reader) are the inputs'; every incompatibility is refused before any work.
/// </summary>
[Collection(GlobalRngCollection.Name)]
public sealed class AdapterAverageTests(AveragingSites sites) : IClassFixture<AveragingSites>
{
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(1);

    [Fact]
    public void FfaAdaptersAverageExactlyIntoAPeftFolderWithTheirConfigTensorsAndLineage()
    {
        using var dir = new TempFolder();
        string output = dir.PathOf("average");
        var r = CliProcess.RunSeparately(Limit, "adapters", "average", "--adapter", $"site1={sites.Ffa1}:1", "--adapter", $"site2={sites.Ffa2}:3", "--out", output);
        Assert.True(r.ExitCode == 0, r.Output);
        Assert.Contains($"averaged 2 adapters → {output}", r.Stdout);
        Assert.Contains("exact: shared frozen A", r.Stdout);
        Assert.DoesNotContain("warning", r.Stderr);

        // ΔW of the average = 0.25·ΔW₁ + 0.75·ΔW₂ (fp32, relative to the largest |ΔW|), and so the merged weights too
        var (d1, m1) = DeltaAndMergedWeights(sites.Ffa1);
        var (d2, m2) = DeltaAndMergedWeights(sites.Ffa2);
        var (da, ma) = DeltaAndMergedWeights(output);
        foreach (string module in d1.Keys)
        {
            using var scope = NewDisposeScope();
            var expected = d1[module] * 0.25 + d2[module] * 0.75;
            Assert.True(TensorAssert.MaxAbs(expected) > 0, $"{module}: the adapters did not train");
            double relative = TensorAssert.RelativeMaxDiff(da[module], expected);
            Assert.True(relative <= 1e-6, $"{module}: ΔW of the average differs from the average ΔW by {relative:G3} relative");
            Assert.True(TensorAssert.RelativeMaxDiff(ma[module], m1[module] * 0.25 + m2[module] * 0.75) <= 1e-6, module);
        }

        // PEFT's files: the config is the inputs', the tensors have their names, dtypes and shapes, A is the shared A
        var config = Json(Path.Combine(output, PeftAdapterConfig.FileName));
        Assert.True(JsonNode.DeepEquals(Json(Path.Combine(sites.Ffa1, PeftAdapterConfig.FileName)), config));
        var other = Json(Path.Combine(sites.Ffa2, PeftAdapterConfig.FileName));
        foreach (string key in new[] { "r", "lora_alpha", "target_modules", "use_rslora", "use_dora", "peft_type", "task_type" })
            Assert.True(JsonNode.DeepEquals(other[key], config[key]), key);
        var header = Header(Path.Combine(output, PeftAdapterFiles.WeightsFileName));
        Assert.Equal(Header(Path.Combine(sites.Ffa1, PeftAdapterFiles.WeightsFileName)), header);
        Assert.Equal(Header(Path.Combine(sites.Ffa2, PeftAdapterFiles.WeightsFileName)), header);
        using (var averaged = new SafetensorsFile(Path.Combine(output, PeftAdapterFiles.WeightsFileName)))
        using (var first = new SafetensorsFile(Path.Combine(sites.Ffa1, PeftAdapterFiles.WeightsFileName)))
            foreach (string name in header.Keys.Where(k => k.EndsWith("lora_A.weight", StringComparison.Ordinal)))
            {
                using var a = averaged.Read(name);
                using var expected = first.Read(name);
                TensorAssert.BitIdentical(expected, a, name);
            }

        // lineage.json: each input's name, folder, weight and the sha256 of its weights file; verify checks it
        var lineage = Json(Path.Combine(output, RunLineage.FileName));
        var inputs = lineage["average"]!["inputs"]!.AsArray();
        Assert.Equal(["site1", "site2"], inputs.Select(i => i!["name"]!.GetValue<string>()));
        Assert.Equal([1.0, 3.0], inputs.Select(i => i!["weight"]!.GetValue<double>()));
        Assert.Equal([0.25, 0.75], inputs.Select(i => i!["normalised_weight"]!.GetValue<double>()));
        Assert.Equal([Path.GetFullPath(sites.Ffa1), Path.GetFullPath(sites.Ffa2)], inputs.Select(i => i!["dir"]!.GetValue<string>()));
        Assert.Equal(new[] { sites.Ffa1, sites.Ffa2 }.Select(d => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(Path.Combine(d, PeftAdapterFiles.WeightsFileName))))),
            inputs.Select(i => i!["weights_sha256"]!.GetValue<string>()));
        Assert.True(lineage["average"]!["exact"]!.GetValue<bool>());
        Assert.True(lineage["adapter"]!["lora_a_frozen"]!.GetValue<bool>());
        Assert.Equal(AdapterCompatibility_ByWeightHashes, lineage["average"]!["base_checked_by"]!.GetValue<string>());
        var checks = LineageVerifier.Verify(output);
        Assert.DoesNotContain(checks, c => c.Outcome == LineageVerifier.Outcome.Mismatch);
        Assert.Equal(2, checks.Count(c => c.What == "input adapters" && c.Outcome == LineageVerifier.Outcome.Match));
        Assert.Equal(0, InProcessCli.Run("verify", output).ExitCode);
        DisposeAll(d1, m1, d2, m2, da, ma);
    }

    private const string AdapterCompatibility_ByWeightHashes = FinQLoRA.Adapters.Averaging.AdapterCompatibility.ByWeightHashes;

    [Fact]
    public void OrdinaryAdaptersAverageTheirFactorsWhichIsNotTheAverageOfTheProductsAndSaySo()
    {
        using var dir = new TempFolder();
        string output = dir.PathOf("average");
        var r = CliProcess.RunSeparately(Limit, "adapters", "average", "--adapter", $"site1={sites.Plain1}", "--adapter", $"site2={sites.Plain2}", "--out", output);
        Assert.True(r.ExitCode == 0, r.Output);
        Assert.Contains("not exact: A and B averaged separately", r.Stdout);
        string warning = Assert.Single(r.Stderr.Split('\n'), l => l.StartsWith("warning: ", StringComparison.Ordinal));
        Assert.Contains("avg(B)·avg(A) is not the average of the products B·A", warning);
        var lineage = Json(Path.Combine(output, RunLineage.FileName));
        Assert.False(lineage["average"]!["exact"]!.GetValue<bool>());
        Assert.Equal(warning["warning: ".Length..], lineage["average"]!["warning"]!.GetValue<string>());

        var (d1, m1) = DeltaAndMergedWeights(sites.Plain1);
        var (d2, m2) = DeltaAndMergedWeights(sites.Plain2);
        var (da, ma) = DeltaAndMergedWeights(output);
        double worst = 0;
        foreach (string module in d1.Keys)
        {
            using var scope = NewDisposeScope();
            worst = Math.Max(worst, TensorAssert.RelativeMaxDiff(da[module], d1[module] * 0.5 + d2[module] * 0.5));
        }
        Assert.True(worst > 1e-3, $"the factor average matched the average of the products ({worst:G3} relative): the sites' A did not differ");
        // the factors themselves are the plain averages
        using (var a1 = new SafetensorsFile(Path.Combine(sites.Plain1, PeftAdapterFiles.WeightsFileName)))
        using (var a2 = new SafetensorsFile(Path.Combine(sites.Plain2, PeftAdapterFiles.WeightsFileName)))
        using (var avg = new SafetensorsFile(Path.Combine(output, PeftAdapterFiles.WeightsFileName)))
            foreach (var e in avg.Entries)
            {
                using var scope = NewDisposeScope();
                TensorAssert.MaxDiffAtMost((a1.Read(e.Name) + a2.Read(e.Name)) / 2, avg.Read(e.Name), 1e-7, e.Name);
            }
        DisposeAll(d1, m1, d2, m2, da, ma);
    }

    [Fact]
    public void IncompatibleAdaptersAndBadWeightsAreRefusedBeforeAnyWorkNamingTheKey()
    {
        using var dir = new TempFolder();
        string Changed(string name, string from, Action<string> change)
        {
            string copy = dir.PathOf(name);
            Directory.CreateDirectory(copy);
            foreach (string f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));
            change(copy);
            return copy;
        }
        void EditJson(string file, Action<JsonObject> edit)
        {
            var o = Json(file);
            edit(o);
            File.WriteAllText(file, o.ToJsonString());
        }
        string rank8 = Changed("rank8", sites.Ffa2, d => EditJson(Path.Combine(d, PeftAdapterConfig.FileName), o => o["r"] = 8));
        string qk = Changed("qk", sites.Ffa2, d => EditJson(Path.Combine(d, PeftAdapterConfig.FileName), o => o["target_modules"] = new JsonArray("q_proj", "k_proj")));
        string otherBase = Changed("other-base", sites.Ffa2, d => EditJson(Path.Combine(d, RunLineage.FileName), o =>
        {
            foreach (var f in o["inputs"]!["model"]!.AsArray().Where(f => f!["path"]!.GetValue<string>().EndsWith(".safetensors", StringComparison.Ordinal)))
                f!["sha256"] = new string('0', 64);
        }));
        string otherA = Changed("other-a", sites.Ffa2, d => NudgeFirstA(Path.Combine(d, PeftAdapterFiles.WeightsFileName)));

        void Refused(string contains, params string[] adapters)
        {
            string output = dir.PathOf("out-" + Guid.NewGuid().ToString("N"));
            string[] args = ["adapters", "average", .. adapters.SelectMany(a => new[] { "--adapter", a }), "--out", output];
            string line = CliProcess.AssertOneLineError(InProcessCli.Run(args), contains);
            Assert.False(Path.Exists(output), $"{line}: the output was created");
        }
        Refused($"adapter 'site2' ({rank8}) has r = 8 but adapter 'site1' ({sites.Ffa1}) has r = 4", $"site1={sites.Ffa1}", $"site2={rank8}");
        Refused("has target_modules = k_proj,q_proj but adapter 'site1'", $"site1={sites.Ffa1}", $"site2={qk}");
        Refused($"adapter 'site2' ({otherBase}) has base model weights (lineage.json inputs.model) = model.safetensors=0000", $"site1={sites.Ffa1}", $"site2={otherBase}");
        Refused(".lora_A.weight[0] = ", $"site1={sites.Ffa1}", $"site2={otherA}");
        Refused("train every site with lora_a_frozen true and the same seed", $"site1={sites.Ffa1}", $"site2={otherA}");
        Refused($"adapter 'site2' ({sites.Plain2}) has lora_a_frozen = false but adapter 'site1' ({sites.Ffa1}) has lora_a_frozen = true", $"site1={sites.Ffa1}", $"site2={sites.Plain2}");
        foreach (string weight in new[] { "0", "-1", "abc", "NaN", "inf" })
            Refused($"--adapter site2={sites.Ffa2}:{weight}: the weight", $"site1={sites.Ffa1}", $"site2={sites.Ffa2}:{weight}");
        Refused("an average needs at least two", $"site1={sites.Ffa1}");
        Refused("the name 'a' is also given to", $"a={sites.Ffa1}", $"a={sites.Ffa2}");

        // an existing non-empty --out is the user's: refused, and left exactly as it was
        string mine = dir.PathOf("mine");
        Directory.CreateDirectory(mine);
        File.WriteAllText(Path.Combine(mine, "notes.txt"), "keep me");
        string refused = CliProcess.AssertOneLineError(InProcessCli.Run("adapters", "average", "--adapter", $"site1={sites.Ffa1}", "--adapter", $"site2={sites.Ffa2}", "--out", mine), "--out");
        Assert.Contains("exists and is not empty", refused);
        Assert.Equal(["notes.txt"], Directory.GetFileSystemEntries(mine).Select(Path.GetFileName));
        Assert.Equal("keep me", File.ReadAllText(Path.Combine(mine, "notes.txt")));
    }

    /// <summary>Every tensor name of a safetensors file with its dtype and shape, from the header as the format defines it
    /// (little-endian u64 length, then JSON), read with System.Text.Json alone.</summary>
    private static SortedDictionary<string, string> Header(string path)
    {
        var bytes = File.ReadAllBytes(path);
        long length = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        using var doc = JsonDocument.Parse(bytes.AsMemory(8, (int)length));
        var tensors = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var p in doc.RootElement.EnumerateObject().Where(p => p.Name != "__metadata__"))
            tensors[p.Name] = $"{p.Value.GetProperty("dtype").GetString()} [{string.Join(",", p.Value.GetProperty("shape").EnumerateArray().Select(x => x.GetInt64()))}]";
        return tensors;
    }

    /// <summary>s·B·A and the merged weight of every adapted projection, the adapter loaded from its folder onto the base.</summary>
    private static (Dictionary<string, Tensor> Delta, Dictionary<string, Tensor> Merged) DeltaAndMergedWeights(string adapterDir)
    {
        using var model = SeededLlama.Load();
        PeftAdapterFiles.Load(adapterDir, model);
        var delta = new Dictionary<string, Tensor>();
        var merged = new Dictionary<string, Tensor>();
        using var noGrad = no_grad();
        foreach (var w in LoraInjector.Wrapped(model))
        {
            delta[w.ModulePath] = w.Lora.Adapters[LoraLinear.DefaultAdapter].DeltaWeight();
            merged[w.ModulePath] = w.Lora.MergedWeight(LoraLinear.DefaultAdapter, ScalarType.Float32);
        }
        return (delta, merged);
    }

    /// <summary>Rewrites an adapter file with the first element of its first A tensor moved by one part in a thousand.</summary>
    private static void NudgeFirstA(string path)
    {
        var tensors = new List<KeyValuePair<string, Tensor>>();
        using (var file = new SafetensorsFile(path))
            foreach (var e in file.Entries) tensors.Add(new(e.Name, file.Read(e.Name)));
        var a = tensors.Where(t => t.Key.EndsWith("lora_A.weight", StringComparison.Ordinal)).OrderBy(t => t.Key, StringComparer.Ordinal).First().Value;
        using (no_grad()) a.view(-1)[0] = a.view(-1)[0] * 1.001f;
        SafetensorsFile.Write(path, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        foreach (var (_, t) in tensors) t.Dispose();
    }

    private static JsonObject Json(string path) => JsonNode.Parse(File.ReadAllText(path))!.AsObject();

    private static void DisposeAll(params Dictionary<string, Tensor>[] all)
    {
        foreach (var d in all)
            foreach (var t in d.Values) t.Dispose();
    }
}
