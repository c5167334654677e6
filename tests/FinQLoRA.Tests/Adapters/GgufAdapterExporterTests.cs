using System.Text.Json.Nodes;
using FinQLoRA.Adapters;
using FinQLoRA.Formats.Checkpoints;
using FinQLoRA.Formats.Gguf;
using FinQLoRA.Tests.Support;
using TorchSharp;

namespace FinQLoRA.Tests.Adapters;

public sealed class GgufAdapterExporterTests
{
    /// <summary>The base: llama.cpp (independent of us) runs it with our adapter and merged; any Llama will do.</summary>
    private static string HfFolder => SeededLlama.Folder;
    private const int Rank = 4;
    private static readonly string[] Modules = ["q_proj", "k_proj", "v_proj"];

    /// <summary>A random PEFT rank-4 adapter on q, k, v of every stories260K layer, for <paramref name="baseFolder"/>
    /// (stories260K itself unless given).</summary>
    private static Dictionary<string, torch.Tensor> WriteAdapter(string folder, double alpha, bool rsLora, bool dora = false, string? baseFolder = null)
    {
        Directory.CreateDirectory(folder);
        var config = new JsonObject
        {
            ["peft_type"] = "LORA", ["r"] = Rank, ["lora_alpha"] = alpha, ["use_rslora"] = rsLora, ["use_dora"] = dora,
            ["target_modules"] = new JsonArray(Modules.Select(m => (JsonNode)m).ToArray()),
            ["base_model_name_or_path"] = baseFolder ?? HfFolder, ["task_type"] = "CAUSAL_LM",
        };
        File.WriteAllText(Path.Combine(folder, "adapter_config.json"), config.ToJsonString());
        using var gen = new torch.Generator(11);
        var tensors = new Dictionary<string, torch.Tensor>();
        for (int layer = 0; layer < 5; layer++)
            foreach (string m in Modules)
            {
                long outRows = m == "q_proj" ? 64 : 32;
                string prefix = $"base_model.model.model.layers.{layer}.self_attn.{m}";
                tensors[$"{prefix}.lora_A.weight"] = 0.1f * torch.randn([Rank, 64], generator: gen);
                tensors[$"{prefix}.lora_B.weight"] = 0.1f * torch.randn([outRows, Rank], generator: gen);
            }
        SafetensorsFile.Write(Path.Combine(folder, "adapter_model.safetensors"), tensors);
        return tensors;
    }

    /// <summary>The base model with W + scale·B·A merged in HF layout, as an HF folder.</summary>
    private static void WriteMerged(string folder, Dictionary<string, torch.Tensor> adapter, double scale)
    {
        Directory.CreateDirectory(folder);
        foreach (var f in new[] { "config.json", "tokenizer.json", "tokenizer_config.json" })
            File.Copy(Path.Combine(HfFolder, f), Path.Combine(folder, f));
        using var reader = new HfCheckpointReader(HfFolder);
        using var scope = torch.NewDisposeScope();
        var merged = reader.Entries.ToDictionary(e => e.Name, e =>
        {
            var w = reader.Read(e.Name);
            string prefix = "base_model.model." + e.Name[..^".weight".Length];
            return adapter.TryGetValue($"{prefix}.lora_A.weight", out var a)
                ? w + (float)scale * adapter[$"{prefix}.lora_B.weight"].matmul(a)
                : w;
        });
        SafetensorsFile.Write(Path.Combine(folder, "model.safetensors"), merged);
    }

    [Theory]
    [InlineData(8.0, false)]
    [InlineData(8.0, true)]
    public void LlamaCppWithOurAdapterMatchesTheMergedModel(double alpha, bool rsLora)
    {
        using var dir = new TempFolder();
        var adapter = WriteAdapter(dir.PathOf("adapter"), alpha, rsLora);
        try
        {
            string lora = dir.PathOf("adapter.gguf");
            GgufAdapterExporter.Export(dir.PathOf("adapter"), lora, HfFolder);
            using (var f = new GgufFile(lora))
            {
                Assert.Equal(("adapter", "lora"), (f.GetString("general.type"), f.GetString("adapter.type")));
                Assert.Equal(rsLora ? alpha * Math.Sqrt(Rank) : alpha, f.GetFloat("adapter.lora.alpha")!.Value, 1e-5);
                Assert.Equal([64L, Rank], f.Tensor("blk.0.attn_q.weight.lora_a").Ne);
                Assert.Equal([(long)Rank, 32L], f.Tensor("blk.4.attn_k.weight.lora_b").Ne);
            }

            double scale = rsLora ? alpha / Math.Sqrt(Rank) : alpha / Rank;
            WriteMerged(dir.PathOf("merged"), adapter, scale);
            string merged = dir.PathOf("merged.gguf"), baseGguf = dir.PathOf("base.gguf");
            ModelConverter.HfToGguf(dir.PathOf("merged"), merged, GgmlType.F32);
            ModelConverter.HfToGguf(HfFolder, baseGguf, GgmlType.F32);

            int[] ids = LlamaCppReference.Tokenize(baseGguf, "Once upon a time, there was a little dog");
            var (withAdapter, _) = LlamaCppReference.Run(baseGguf, ids, lora: lora);
            var (expected, _) = LlamaCppReference.Run(merged, ids);
            var (plain, _) = LlamaCppReference.Run(baseGguf, ids);
            double diff = LlamaCppReference.MaxAbsDiff(expected, withAdapter);
            Console.WriteLine($"adapter vs merged: max |diff| {diff:E2}; adapter effect {LlamaCppReference.MaxAbsDiff(plain, withAdapter):F3}");
            Assert.True(diff <= 1e-4, $"adapter vs merged: max |diff| {diff}");
            Assert.True(LlamaCppReference.MaxAbsDiff(plain, withAdapter) > 0.1, "the adapter changed nothing; the test would not see a wrong export");
        }
        finally
        {
            foreach (var t in adapter.Values) t.Dispose();
        }
    }

    /// <summary>Refused before any weight is read: a seeded model with stories260K's shapes serves as the base.</summary>
    [Fact]
    public void DoraIsRefusedWithAMergeHint()
    {
        using var dir = new TempFolder();
        foreach (var t in WriteAdapter(dir.PathOf("adapter"), 8, rsLora: false, dora: true, baseFolder: SeededLlama.Folder).Values) t.Dispose();
        var e = Assert.Throws<UserInputException>(() => GgufAdapterExporter.Export(dir.PathOf("adapter"), dir.PathOf("x.gguf"), SeededLlama.Folder));
        Assert.Contains("use_dora", e.Message);
        Assert.Contains("merge", e.Message);
        Assert.False(File.Exists(dir.PathOf("x.gguf")));
    }
}
