using FinQLoRA.Formats.Checkpoints;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Formats.Checkpoints;

public sealed class SafetensorsStreamWriterTests
{
    [Fact]
    public void TensorsAddedOneByOneReadBackAsWrittenAndNoSpillFileRemains()
    {
        using var temp = new TempFolder();
        string path = Path.Combine(temp.Path, "model.safetensors");
        var tensors = new Dictionary<string, Tensor>
        {
            ["b.weight"] = randn(3, 5).to(ScalarType.BFloat16),
            ["a.weight"] = arange(7, ScalarType.Int8),
            ["c.state"] = tensor(new byte[] { 1, 2, 3 }),
            ["d.scalar"] = tensor((byte)0),
            ["e.view"] = randn(4, 6).t(), // not contiguous
        };
        using (var writer = new SafetensorsStreamWriter(path, new Dictionary<string, string> { ["format"] = "pt" }))
        {
            foreach (var (name, t) in tensors) writer.Add(name, t);
            Assert.Throws<ArgumentException>(() => writer.Add("a.weight", tensors["a.weight"]));
            writer.Commit();
        }
        Assert.Equal(["model.safetensors"], Directory.GetFiles(temp.Path).Select(Path.GetFileName));
        using var file = new SafetensorsFile(path);
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal(tensors.Count, file.Entries.Count());
        foreach (var (name, t) in tensors)
        {
            using var back = file.Read(name);
            Assert.Equal(t.dtype, back.dtype);
            Assert.Equal(t.shape, back.shape);
            TensorAssert.Equal(t.to(ScalarType.Float64), back.to(ScalarType.Float64), name);
        }
        // the data area starts 8-byte aligned, as the reference writer keeps it
        Assert.Equal(0, SafetensorsFile.HeaderText(path).Length % 8);
        foreach (var t in tensors.Values) t.Dispose();
    }

    [Fact]
    public void AnUncommittedWriterLeavesNothingBehind()
    {
        using var temp = new TempFolder();
        string path = Path.Combine(temp.Path, "model.safetensors");
        using (var writer = new SafetensorsStreamWriter(path))
        {
            using var t = ones(10);
            writer.Add("x", t);
            Assert.Equal(40, writer.DataBytes);
        }
        Assert.Empty(Directory.GetFiles(temp.Path));
    }
}
