using FinQLoRA.Loading;
using FinQLoRA.Demo;
using FinQLoRA.Models;
using FinQLoRA.Formats.Checkpoints;
using FinQLoRA.Formats.Gguf;
using FinQLoRA.Tests.Fuzz;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Formats.Checkpoints;

/// <summary>Damaged safetensors and GGUF headers: each a one-line <see cref="UserInputException"/> naming the file and tensor.</summary>
public sealed class SafetensorsHeaderTests
{
    private static UserInputException Refuse(string header, int dataBytes)
    {
        using var dir = new TempFolder();
        string path = Path.Combine(dir.Path, "x.safetensors");
        File.WriteAllBytes(path, SafetensorsBytes.Of(header, dataBytes));
        var e = Assert.Throws<UserInputException>(() => new SafetensorsFile(path));
        Assert.StartsWith(path + ": ", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        return e;
    }

    [Theory]
    // offsets of 2^63 and above do not fit a long (GetInt64 threw FormatException: exit 1 with a stack hint)
    [InlineData("""{"w":{"dtype":"F32","shape":[1],"data_offsets":[9223372036854775808,9223372036854775812]}}""", 4, "tensor 'w' has 'data_offsets' [9223372036854775808, 9223372036854775812]: 9223372036854775808 is not an integer in [0, 2^63)")]
    [InlineData("""{"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}""", 4, "-4 is not an integer in [0, 2^63)")]
    [InlineData("""{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}""", 4, "tensor 'w' has 3 'data_offsets' values; it needs 2")]
    [InlineData("""{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}""", 4, "tensor 'w' has bytes [4, 0] outside the data area")]
    // shapes: negative (libtorch: "negative dimension"), overflowing, not integers
    [InlineData("""{"w":{"dtype":"F32","shape":[-1,4],"data_offsets":[0,0]}}""", 0, "tensor 'w' has shape [-1, 4] with a negative dimension")]
    [InlineData("""{"w":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,0]}}""", 0, "tensor 'w' has shape [4294967296, 4294967296, 4], more elements than 64 bits can count")]
    [InlineData("""{"w":{"dtype":"F32","shape":[2305843009213693952],"data_offsets":[0,0]}}""", 0, "tensor 'w' has shape [2305843009213693952] of F32, more bytes than 64 bits can count")]
    [InlineData("""{"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,10]}}""", 10, "tensor 'w' has 'shape' [2.5]: 2.5 is not an integer")]
    [InlineData("""{"w":{"dtype":"F32","shape":["4"],"data_offsets":[0,16]}}""", 16, "tensor 'w' has 'shape' [\"4\"]: \"4\" is not an integer")]
    [InlineData("""{"w":{"dtype":"F32","data_offsets":[0,16]}}""", 16, "tensor 'w' has no 'shape' array")]
    // dtype missing or not a string
    [InlineData("""{"w":{"shape":[4],"data_offsets":[0,16]}}""", 16, "tensor 'w' has no dtype string")]
    [InlineData("""{"w":{"dtype":4,"shape":[4],"data_offsets":[0,16]}}""", 16, "tensor 'w' has no dtype string")]
    [InlineData("""{"w":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}}""", 4, "tensor 'w' has dtype 'F8_E4M3', which is not supported")]
    // not objects
    [InlineData("""[1,2]""", 0, "the JSON header is an array, not an object of tensors")]
    [InlineData("""  "w"   """, 0, "the JSON header is a string, not an object of tensors")]
    [InlineData("""{"w":[4]}""", 0, "tensor 'w' is an array, not an object with dtype, shape and data_offsets")]
    [InlineData("""{"w":null}""", 0, "tensor 'w' is null, not an object")]
    [InlineData("""{"__metadata__":[1]}""", 0, "'__metadata__' is an array, not an object of strings")]
    [InlineData("""{"__metadata__":{"format":1}}""", 0, "'__metadata__' key 'format' is a number; safetensors metadata values are strings")]
    // ranges must tile the data area: overlap, gap, trailing bytes
    [InlineData("""{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}""", 24, "tensor 'b' (bytes [8, 24)) overlaps tensor 'a' (which ends at 16)")]
    [InlineData("""{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", 16, "overlaps tensor 'a'")]
    [InlineData("""{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[20,36]}}""", 36, "tensor 'b' starts at byte 20 of the data area, but tensor 'a' ends at 16")]
    [InlineData("""{"a":{"dtype":"F32","shape":[4],"data_offsets":[4,20]}}""", 20, "tensor 'a' starts at byte 4 of the data area, but the data area starts at byte 0")]
    [InlineData("""{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", 20, "the data area holds 20 bytes but its tensors end at byte 16 (after 'a')")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8, "tensor 'a' appears twice")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]""", 4, "the JSON header is malformed")]
    public void DamagedHeaderIsRefusedNamingTheTensor(string header, int dataBytes, string expected) =>
        Assert.Contains(expected, Refuse(header, dataBytes).Message);

    [Fact]
    public void HeaderThatIsNotUtf8IsRefused()
    {
        using var dir = new TempFolder();
        string path = Path.Combine(dir.Path, "x.safetensors");
        byte[] header = [.. "{\"w"u8, 0xFF, .. "\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}"u8];
        File.WriteAllBytes(path, [.. BitConverter.GetBytes((long)header.Length), .. header, 0, 0, 0, 0]);
        var e = Assert.Throws<UserInputException>(() => new SafetensorsFile(path));
        Assert.StartsWith($"{path}: the JSON header is not valid UTF-8 (byte 0xFF at header byte 3)", e.Message);
    }

    [Fact]
    public void ElementOffsetsThatAreNotMultiplesOfTheElementSizeAreValid_AsForTheReferenceReader()
    {
        using var dir = new TempFolder();
        string path = Path.Combine(dir.Path, "x.safetensors");
        string header = """{"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},"b":{"dtype":"F32","shape":[1],"data_offsets":[3,7]}}""";
        byte[] bytes = SafetensorsBytes.Of(header, 7);
        BitConverter.GetBytes(1.5f).CopyTo(bytes, bytes.Length - 4);
        File.WriteAllBytes(path, bytes);
        using var f = new SafetensorsFile(path);
        using var b = f.Read("b");
        Assert.Equal(1.5f, b.item<float>());
    }

    [Fact]
    public void HeaderLengthOverTheFormatsLimitIsRefusedBeforeAllocating()
    {
        using var dir = new TempFolder();
        string path = Path.Combine(dir.Path, "x.safetensors");
        using (var f = File.Create(path))
        {
            f.Write(BitConverter.GetBytes(150_000_000L));
            f.SetLength(200_000_000); // sparse: costs no disk
        }
        var e = Assert.Throws<UserInputException>(() => new SafetensorsFile(path));
        Assert.Equal($"{path}: header length 150000000 is over the 100000000-byte limit of the safetensors format; the file is damaged or not safetensors — download it again", e.Message);
    }

    private static readonly ModelConfig Tiny = new()
    {
        HiddenSize = 16, IntermediateSize = 32, NumLayers = 1, NumHeads = 2, NumKvHeads = 1, HeadDim = 8, VocabSize = 40,
        MaxPositionEmbeddings = 32,
    };

    [Theory]
    [InlineData(ScalarType.Int32, "I32")]
    [InlineData(ScalarType.Int8, "I8")]
    [InlineData(ScalarType.Bool, "BOOL")]
    public void AnIntegerOrBoolWeightIsRefusedWhenLoadingAModel(ScalarType dtype, string name)
    {
        using var dir = new TempFolder();
        RandomLlama.WriteHfFolder(Tiny, dir.Path, seed: 3);
        string file = Path.Combine(dir.Path, "model.safetensors");
        const string bad = "model.layers.0.mlp.up_proj.weight";
        var tensors = new Dictionary<string, Tensor>();
        using (var f = new SafetensorsFile(file))
            foreach (var e in f.Entries) tensors[e.Name] = e.Name == bad ? f.Read(e.Name).to(dtype) : f.Read(e.Name);
        SafetensorsFile.Write(file, tensors);
        foreach (var t in tensors.Values) t.Dispose();

        var error = Assert.Throws<UserInputException>(() => ModelLoading.LoadModel(dir.Path, new ModelLoadOptions()));
        Assert.Equal($"{dir.Path}: tensor '{bad}' is stored as {name}, but a model weight must be floating point (F32, F16, BF16 or F64); the checkpoint is damaged, or it is quantized and config.json lacks the quantization_config that says so", error.Message);
    }

    private static UserInputException RefuseGguf(byte[] bytes)
    {
        using var dir = new TempFolder();
        string path = Path.Combine(dir.Path, "x.gguf");
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<UserInputException>(() => new GgufFile(path));
        Assert.StartsWith(path + ": ", e.Message);
        return e;
    }

    private const uint F32 = 0, F64 = 28;

    [Fact]
    public void GgufShapeWhoseByteCountOverflowsIsRefused()
    {
        var e = RefuseGguf(new GgufBytes().Tensor("blk.0.attn_q.weight", F32, 0, 1UL << 40, 1UL << 40).Build(64));
        Assert.Contains("tensor 'blk.0.attn_q.weight' has shape ne=[1099511627776, 1099511627776], more bytes than 64 bits can count", e.Message);
    }

    [Fact]
    public void GgufOffsetPlusSizeThatWrapsPast2To63IsRefused()
    {
        // 8 * (2^60 - 1) bytes from offset 32: the sum wraps negative, which passed "offset + count > dataLength".
        var e = RefuseGguf(new GgufBytes().Tensor("blk.0.attn_q.weight", F64, 32, (1UL << 60) - 1).Build(64));
        Assert.Contains("tensor 'blk.0.attn_q.weight' needs 9223372036854775800 bytes from data offset 32", e.Message);
    }

    [Fact]
    public void GgufTensorsSharingBytesAreRefused()
    {
        var e = RefuseGguf(new GgufBytes().Tensor("a", F32, 0, 32).Tensor("b", F32, 64, 32).Build(256));
        Assert.Contains("tensor 'b' (data offset 64) overlaps tensor 'a' (bytes [0, 128))", e.Message);
    }

    [Fact]
    public void GgufStringLongerThanAStringCanHoldIsRefused()
    {
        using var dir = new TempFolder();
        string path = Path.Combine(dir.Path, "x.gguf");
        using (var f = File.Create(path))
        {
            using var w = new BinaryWriter(f);
            w.Write(0x46554747u);
            w.Write(3u);
            w.Write(0UL);
            w.Write(1UL);
            w.Write(1UL << 31); // key length 2^31: within the (sparse) file, but over int.MaxValue
            f.SetLength((1L << 31) + 4096);
        }
        var e = Assert.Throws<UserInputException>(() => new GgufFile(path));
        Assert.Equal($"{path}: key of KV pair 0 is 2147483648 bytes long, more than a string can hold; the file is damaged", e.Message);
    }
}
