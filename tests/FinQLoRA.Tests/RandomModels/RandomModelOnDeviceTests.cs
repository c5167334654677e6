using System.Text.Json;
using FinQLoRA.Demo.RandomModels;
using FinQLoRA.Formats.Checkpoints;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Planning;
using Xunit;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.RandomModels;

/// <summary>The random models the device benchmarks build where they run: the named shapes, and the model built from
/// <see cref="RandomCheckpointReader"/> against the same tensors written to a file and loaded as any checkpoint.</summary>
public sealed class RandomModelOnDeviceTests
{
    [Fact]
    public void TheEightBShapeIsLlama31EightB()
    {
        var c = RandomModelShapes.Get("8b");
        Assert.Equal((32, 4096, 14336, 32, 8, 128, 128_256), (c.NumLayers, c.HiddenSize, c.IntermediateSize, c.NumHeads, c.NumKvHeads, c.HeadDim, c.VocabSize));
        Assert.False(c.TieWordEmbeddings);
        // meta-llama/Llama-3.1-8B's model card and safetensors index: 8,030,261,248 parameters
        Assert.Equal(8_030_261_248, MemoryPlanner.ParameterCount(c));
        Assert.Equal(RandomModelShapes.Model100M, RandomModelShapes.Get("100M"));
        var e = Assert.Throws<UserInputException>(() => RandomModelShapes.Get("7b"));
        Assert.Equal("--shape '7b' is not one of tiny, 100m, 8b", e.Message);
    }

    [Fact]
    public void EachTensorHasItsOwnSeededValuesWhateverTheOrderOfReads()
    {
        var config = RandomModelShapes.Tiny;
        using var a = new RandomCheckpointReader(config, seed: 3, ScalarType.BFloat16, CPU);
        using var b = new RandomCheckpointReader(config, seed: 3, ScalarType.BFloat16, CPU);
        using var other = new RandomCheckpointReader(config, seed: 4, ScalarType.BFloat16, CPU);
        string q = ModelLayout.WeightName(1, ProjectionKind.Q), down = ModelLayout.WeightName(3, ProjectionKind.Down);
        using var q1 = a.Read(q);
        using var down1 = a.Read(down);
        using var down2 = b.Read(down); // the other order
        using var q2 = b.Read(q);
        using var qOther = other.Read(q);
        Assert.True(q1.eq(q2).all().item<bool>());
        Assert.True(down1.eq(down2).all().item<bool>());
        Assert.False(q1.eq(qOther).all().item<bool>());
        using var q2OfLayer2 = a.Read(ModelLayout.WeightName(2, ProjectionKind.Q));
        Assert.False(q1.eq(q2OfLayer2).all().item<bool>()); // not one draw for every layer
        Assert.Equal(ScalarType.BFloat16, q1.dtype);
        Assert.Equal(new long[] { config.NumHeads * config.HeadDim, config.HiddenSize }, q1.shape);
        // N(0, 0.02): over 65k draws the standard deviation is within a few percent of 0.02
        Assert.InRange(q1.to(ScalarType.Float32).std().item<float>(), 0.019, 0.021);
        using var norm = a.Read(ModelLayout.FinalNormName);
        Assert.True(norm.to(ScalarType.Float32).eq(1).all().item<bool>());
        Assert.Equal(ModelLayout.Tensors(config).Select(t => t.HfName), a.Entries.Select(e => e.Name));
    }

    /// <summary>Built on the device straight from the reader, or written to a safetensors file and loaded from the
    /// folder like any checkpoint: the same model, logit for logit, at 16 and at 4 bits.</summary>
    [Theory]
    [InlineData(16)]
    [InlineData(4)]
    public void BuildingFromTheReaderEqualsLoadingTheSameTensorsFromAFile(int bits)
    {
        var config = RandomModelShapes.Tiny with { NumLayers = 2 };
        using var folder = new Support.TempFolder();
        using (var reader = new RandomCheckpointReader(config, seed: 5, ScalarType.BFloat16, CPU))
        using (var writer = new SafetensorsStreamWriter(folder.PathOf("model.safetensors"), new Dictionary<string, string> { ["format"] = "pt" }))
        {
            foreach (var e in reader.Entries)
                using (var t = reader.Read(e.Name)) writer.Add(e.Name, t);
            writer.Commit();
        }
        File.WriteAllText(folder.PathOf("config.json"), (config with { TorchDtype = "bfloat16" }).ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

        using var built = RandomModel.Build(config, CPU, bits, seed: 5);
        using var loaded = ModelLoading.LoadModel(folder.Path, new ModelLoadOptions { DType = ScalarType.BFloat16 }.WithBits(bits));
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var ids = tensor(new long[] { 1, 17, 300, 4000, 5, 99, 2048, 7 }, [2, 4]);
        var a = built.Forward(ids).to(ScalarType.Float32);
        var b = loaded.Forward(ids).to(ScalarType.Float32);
        Assert.True(a.isfinite().all().item<bool>());
        Assert.True(a.eq(b).all().item<bool>(), $"max |diff| {(a - b).abs().max().item<float>()}");
    }
}
