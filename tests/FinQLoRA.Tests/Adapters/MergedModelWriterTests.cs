using FinQLoRA.Loading;
using FinQLoRA.Adapters;
using FinQLoRA.Models;
using FinQLoRA.Formats.Checkpoints;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Adapters;

/// <summary>A merged HF folder written from a LoRA model loads back (with our loader) and gives the LoRA model's logits.</summary>
public sealed class MergedModelWriterTests : IDisposable
{
    private readonly TempFolder _temp = new();
    private string MergedDir => _temp.PathOf("merged"); // not yet there: the writer creates it

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void MergedFolderReloadsWithTheAdaptersLogits()
    {
        string baseFolder = SeededLlama.Folder;
        using var model = SeededLlama.Load();
        LoraInjector.Apply(model, new LoraConfig { Rank = 4, Alpha = 32, TargetModules = ["q_proj", "o_proj", "up_proj"] });
        LoraTestKit.Randomize(model, "default", seed: 8);
        using var expected = LoraTestKit.Logits(model);

        long bytes = MergedModelWriter.WriteHfFolder(model, model.Config, baseFolder, MergedDir, ScalarType.Float32);
        Assert.IsType<LoraLinear>(model.Layers[0].Attention[ProjectionKind.Q]); // writing does not merge the live model

        Assert.Equal(new FileInfo(Path.Combine(MergedDir, "model.safetensors")).Length, bytes);
        Assert.InRange(bytes, 292_800 * 4, 292_800 * 4 + 16384); // stories260K's shapes: 292,800 fp32 weights plus the header
        foreach (string f in new[] { "config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json" })
            Assert.True(File.Exists(Path.Combine(MergedDir, f)), f);
        using (var st = new SafetensorsFile(Path.Combine(MergedDir, "model.safetensors")))
        {
            Assert.Equal(48, st.Entries.Count()); // the base checkpoint's 48 tensors, same names
            using var original = new SafetensorsFile(Path.Combine(baseFolder, "model.safetensors"));
            Assert.Equal(original.Entries.Select(e => e.Name).Order(), st.Entries.Select(e => e.Name).Order());
        }

        using var merged = ModelLoading.LoadModel(MergedDir, new ModelLoadOptions { DType = ScalarType.Float32 });
        using var logits = LoraTestKit.Logits(merged);
        double diff = TensorAssert.RelativeMaxDiff(logits, expected);
        Assert.True(diff < 1e-5, $"merged folder vs LoRA model max |diff| / max |logit| = {diff}");
    }
}
