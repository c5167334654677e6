using FinQLoRA.Formats.Checkpoints;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Quantization;
using FinQLoRA.Runtime;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Loading;

/// <summary>
/// Loading by mapping (<see cref="ModelLoadOptions.MapWeights"/>): tensors used as stored are views of the checkpoint
/// file. The mapped model equals the copying load bit for bit, the map is copy-on-write, it goes away with the model's
/// tensors, and a file whose data is not aligned to its element size is copied instead. Whether the file is mapped is
/// read from /proc/self/maps; each test maps a private copy, since other tests read the shared seeded folder at once.
/// </summary>
public sealed class MappedLoadingTests
{
    private static readonly ModelLoadOptions Fp32 = new() { DType = ScalarType.Float32 };

    [Theory]
    [InlineData(4)]
    [InlineData(8)]
    public void MappedLoadOfAPrequantizedFolderIsBitIdenticalToTheCopyingLoad(int bits)
    {
        using var temp = new TempFolder();
        string folder = temp.PathOf("q");
        CheckpointQuantizer.Run(SeededLlama.Folder, folder, bits == 8 ? new QuantizationOptions(8, FourBitType.Nf4, true) : QuantizationOptions.Nf4);
        string file = Path.Combine(folder, "model.safetensors");

        using var copied = ModelLoading.LoadModel(folder, Fp32 with { MapWeights = false });
        Assert.Empty(ProcessMaps.Of(file));
        using var mapped = ModelLoading.LoadModel(folder, Fp32);
        // the reader is closed: what remains mapped is held by the model's tensors, copy-on-write (private, writable)
        Assert.NotEmpty(ProcessMaps.Of(file));
        Assert.All(ProcessMaps.Of(file), perms => Assert.Equal("rw-p", perms));
        // the packed 4/8-bit data itself, not just the norms, lives in the file's pages
        Assert.All(mapped.modules().OfType<QuantizedLinear>(), q => Assert.True(ProcessMaps.Contains(file, PackedData(q)), "packed weight copied"));
        Assert.All(copied.modules().OfType<QuantizedLinear>(), q => Assert.False(ProcessMaps.Contains(file, PackedData(q)), "packed weight mapped"));

        AssertSameTensors(copied, mapped);
        using var ids = tensor(new long[] { 1, 403, 407, 261, 378, 267 }).unsqueeze(0);
        using var expected = copied.Forward(ids);
        using var actual = mapped.Forward(ids);
        TensorAssert.BitIdentical(expected, actual, "logits");
    }

    [Fact]
    public void MappedLoadOfAGgufFileIsBitIdenticalToTheCopyingLoad()
    {
        using var temp = new TempFolder();
        string gguf = temp.PathOf("model.gguf");
        File.Copy(SeededLlama.Gguf, gguf);
        using var copied = ModelLoading.LoadModel(gguf, Fp32 with { MapWeights = false });
        using var mapped = ModelLoading.LoadModel(gguf, Fp32);
        Assert.NotEmpty(ProcessMaps.Of(gguf)); // embeddings, norms, o_proj, down_proj: F32 as stored
        AssertSameTensors(copied, mapped);
    }

    [Fact]
    public void DisposingTheModelReleasesTheMapping()
    {
        using var temp = new TempFolder();
        string folder = temp.PathOf("q");
        CheckpointQuantizer.Run(SeededLlama.Folder, folder, QuantizationOptions.Nf4);
        string file = Path.Combine(folder, "model.safetensors");

        var model = ModelLoading.LoadModel(folder, Fp32);
        Assert.NotEmpty(ProcessMaps.Of(file));
        File.Delete(file); // the model keeps working on the unlinked file's pages
        Assert.NotEmpty(ProcessMaps.Of(file));
        using (var ids = tensor(new long[] { 1, 403, 407 }).unsqueeze(0))
        using (var logits = model.Forward(ids))
            Assert.True(logits.isfinite().all().item<bool>());
        model.Dispose();
        // at once, not when the garbage collector finalizes a stray handle
        Assert.Empty(ProcessMaps.Of(file));
    }

    [Fact]
    public void WritingIntoAMappedTensorNeverChangesTheFile()
    {
        using var temp = new TempFolder();
        string folder = SeededLlama.CopyTo(temp.PathOf("m"));
        string path = Path.Combine(folder, "model.safetensors");
        byte[] before = File.ReadAllBytes(path);
        using (var file = new SafetensorsFile(path))
        {
            using var view = file.TryMap("model.norm.weight") ?? throw new Xunit.Sdk.XunitException("an aligned F32 tensor was not mapped");
            using var stored = file.Read("model.norm.weight");
            TensorAssert.BitIdentical(stored, view, "view vs read");
            view.add_(1f);
            using var reread = file.Read("model.norm.weight");
            TensorAssert.BitIdentical(stored, reread, "file after a write into the view");
        }
        Assert.Equal(before, File.ReadAllBytes(path));
    }

    [Fact]
    public void AFileWhoseDataIsMisalignedIsCopiedNotMapped()
    {
        using var temp = new TempFolder();
        string folder = SeededLlama.CopyTo(temp.PathOf("odd"));
        string path = Path.Combine(folder, "model.safetensors");
        ShiftDataByOneByte(path);
        using (var file = new SafetensorsFile(path))
            Assert.Null(file.TryMap("model.norm.weight")); // F32 data at an odd offset

        using var reference = SeededLlama.Load();
        using var loaded = ModelLoading.LoadModel(folder, Fp32);
        Assert.Empty(ProcessMaps.Of(path));
        AssertSameTensors(reference, loaded);
    }

    private static IntPtr PackedData(QuantizedLinear q) => TensorMemory.DataPointer(q.Weight switch
    {
        Blockwise4BitTensor b => b.Packed,
        Int8RowwiseTensor i => i.CB,
        _ => throw new InvalidOperationException($"no packed data in {q.Weight.GetType().Name}"),
    });

    /// <summary>Rewrites a safetensors file with one more space in its header: still valid (the header is JSON), but
    /// the data area then starts at an odd offset, so no F32 tensor in it is 4-byte aligned.</summary>
    private static void ShiftDataByOneByte(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        long headerLength = BitConverter.ToInt64(bytes, 0);
        using var output = new MemoryStream();
        output.Write(BitConverter.GetBytes(headerLength + 1));
        output.Write(bytes, 8, (int)headerLength);
        output.WriteByte((byte)' ');
        output.Write(bytes, 8 + (int)headerLength, bytes.Length - 8 - (int)headerLength);
        File.WriteAllBytes(path, output.ToArray());
        Assert.Equal(1, (8 + headerLength + 1) % 2);
    }

    /// <summary>Every parameter and buffer, and every quantized weight's stored entries, are bit-identical.</summary>
    private static void AssertSameTensors(DecoderModel expected, DecoderModel actual)
    {
        var owned = new List<Tensor>();
        Dictionary<string, Tensor> All(DecoderModel model)
        {
            var all = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            foreach (var (name, p) in model.named_parameters()) all[name] = p;
            foreach (var (name, b) in model.named_buffers()) all[name] = b;
            foreach (var (name, module) in model.named_modules())
                if (module is QuantizedLinear q)
                    foreach (var (key, t) in BitsAndBytesFormat.ToStateDict(q.Weight, name + "."))
                    {
                        all[key] = t;
                        owned.Add(t);
                    }
            return all;
        }
        try
        {
            var e = All(expected);
            var a = All(actual);
            Assert.Equal(e.Keys.Order(StringComparer.Ordinal), a.Keys.Order(StringComparer.Ordinal));
            Assert.NotEmpty(e);
            foreach (var (name, t) in e) TensorAssert.BitIdentical(t, a[name], name);
        }
        finally
        {
            foreach (var t in owned) t.Dispose();
        }
    }
}
