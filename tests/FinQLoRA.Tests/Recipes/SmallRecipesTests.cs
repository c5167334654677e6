using System.Text.Json.Nodes;
using FinQLoRA.IO;
using FinQLoRA.Quantization;
using FinQLoRA.Recipes;
using FinQLoRA.Tests.Support;
using FinQLoRA.Training;

namespace FinQLoRA.Tests.Recipes;

/// <summary>The quantize, convert, export-adapter and verify recipes, called as a program other than the CLI would
/// call them, on the seeded Llama (no ../shared).</summary>
public sealed class SmallRecipesTests
{
    [Fact]
    public void QuantizeWritesTheFolderAndDescribesItsKind()
    {
        using var dir = new TempFolder();
        var options = new QuantizeOptions { ModelPath = SeededLlama.Folder, OutPath = dir.PathOf("nf4") };
        var summary = QuantizeRecipe.Run(options);
        Assert.Equal(Path.GetFullPath(options.OutPath), Path.GetFullPath(summary.OutputFolder));
        Assert.True(summary.QuantizedProjections > 0);
        Assert.True(File.Exists(Path.Combine(options.OutPath, "config.json")));
        Assert.Equal("nf4, double quant", QuantizeRecipe.Describe(options));
        Assert.Equal("fp4", QuantizeRecipe.Describe(options with { Quant = FourBitType.Fp4, DoubleQuant = false }));
        Assert.Equal("LLM.int8", QuantizeRecipe.Describe(options with { Bits = 8 }));
    }

    [Fact]
    public void ConvertGoesToGgufAndBack()
    {
        using var dir = new TempFolder();
        string gguf = ConvertRecipe.Run(new ConvertOptions { ModelPath = SeededLlama.Folder, OutPath = dir.PathOf("m.gguf"), To = "gguf" });
        Assert.True(File.Exists(gguf));
        string hf = ConvertRecipe.Run(new ConvertOptions { ModelPath = gguf, OutPath = dir.PathOf("hf"), To = "hf" });
        Assert.True(File.Exists(Path.Combine(hf, "config.json")));
    }

    [Theory]
    [InlineData("gguf", "converts a Hugging Face model folder")]
    [InlineData("hf", "converts a .gguf file")]
    [InlineData("onnx", "is not one of hf, gguf")]
    public void ConvertRefusesAnInputOfTheWrongKindBeforeWriting(string to, string expected)
    {
        using var dir = new TempFolder();
        // a file where --to gguf wants a folder, a missing file where --to hf wants a .gguf
        string model = to == "gguf" ? Path.Combine(SeededLlama.Folder, "config.json") : dir.PathOf("missing.gguf");
        var e = Assert.Throws<UserInputException>(() => ConvertRecipe.Run(new ConvertOptions { ModelPath = model, OutPath = dir.PathOf("out"), To = to }));
        Assert.Contains(expected, e.Message);
        Assert.False(Path.Exists(dir.PathOf("out")));
    }

    [Fact]
    public void ExportAdapterWritesOnlyGguf()
    {
        using var dir = new TempFolder();
        var e = Assert.Throws<UserInputException>(() => AdapterExportRecipe.Run(new AdapterExportOptions { AdapterDir = dir.Path, OutPath = dir.PathOf("a.bin"), To = "ggml" }));
        Assert.Contains("'ggml'", e.Message);
    }

    [Fact]
    public void VerifyReportsEachCheckAndTheFirstMismatch()
    {
        using var dir = new TempFolder();
        string file = dir.PathOf("adapter_model.safetensors");
        File.WriteAllText(file, "weights");
        var lineage = new JsonObject
        {
            ["adapter_files"] = new JsonObject { ["adapter_model.safetensors"] = FileHashes.Sha256(file) },
            ["inputs"] = new JsonObject { ["data"] = new JsonArray(new JsonObject { ["path"] = dir.PathOf("gone.jsonl"), ["sha256"] = "00" }) },
        };
        File.WriteAllText(dir.PathOf(RunLineage.FileName), lineage.ToJsonString());

        var seen = new List<string>();
        var ok = VerifyRecipe.Run(dir.Path, c => seen.Add(c.Path));
        Assert.Equal([file, dir.PathOf("gone.jsonl")], seen);
        Assert.Null(ok.FirstMismatch);
        Assert.Equal((1, 1), (ok.Matched, ok.Missing));

        File.WriteAllText(file, "changed");
        var bad = VerifyRecipe.Run(dir.Path);
        Assert.Equal(file, bad.FirstMismatch?.Path);
        Assert.Equal(0, bad.Matched);
    }
}
