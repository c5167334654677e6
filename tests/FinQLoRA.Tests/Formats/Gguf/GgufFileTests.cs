using FinQLoRA.Formats.Gguf;
using FinQLoRA.Tests.Support;
using TorchSharp;

namespace FinQLoRA.Tests.Formats.Gguf;

public sealed class GgufFileTests
{
    private static string Stories => Shared.File("models/stories260K/stories260K.gguf");

    /// <summary>A well-formed GGUF to damage; any will do, so the seeded model's (no ../shared needed).</summary>
    private static string Intact => SeededLlama.Gguf;

    [SharedFact]
    public void ParsesHeaderKvAndTensorInfosOfStories260K()
    {
        using var f = new GgufFile(Stories);
        Assert.Equal(3u, f.Version);
        Assert.Equal(19, f.Metadata.Count);
        Assert.Equal(48, f.Tensors.Count);
        Assert.Equal(32, f.Alignment);
        Assert.Equal(14176, f.DataOffset);
        Assert.Equal("llama", f.GetString("general.architecture"));
        Assert.Equal(64, f.GetInteger("llama.embedding_length"));
        Assert.Equal(1e-5, f.GetFloat("llama.attention.layer_norm_rms_epsilon")!.Value, 1e-9);
        Assert.Equal(4294967295L, f.GetInteger("tokenizer.ggml.padding_token_id"));
        var tokens = f.GetArray<string>("tokenizer.ggml.tokens")!;
        Assert.Equal(512, tokens.Length);
        Assert.Equal(("<unk>", "<s>", "<0x00>", "▁Once", "\u200a"), (tokens[0], tokens[1], tokens[3], tokens[403], tokens[511]));
        var scores = f.GetArray<float>("tokenizer.ggml.scores")!;
        Assert.Equal((0f, 0f, -252f), (scores[258], scores[259], scores[511]));
        Assert.Equal([2, 3, 3, 6], f.GetArray<int>("tokenizer.ggml.token_type")![..4]);

        var embd = f.Tensor("token_embd.weight");
        Assert.Equal([64L, 512L], embd.Ne);
        Assert.Equal([512L, 64L], embd.TorchShape);
        Assert.Equal(GgmlType.F32, embd.Type);
        Assert.Equal([172L, 64L], f.Tensor("blk.4.ffn_down.weight").Ne);
        Assert.Equal(292_800, f.Tensors.Sum(t => t.ElementCount));
        Assert.Equal(1_185_376, f.DataOffset + f.Tensors.Max(t => t.Offset + t.ByteCount));
    }

    [Fact]
    public void TruncatedFileNamesTheFile()
    {
        using var dir = new TempFolder();
        string path = dir.PathOf("short.gguf");
        File.WriteAllBytes(path, File.ReadAllBytes(Intact)[..10]);
        var e = Assert.Throws<UserInputException>(() => new GgufFile(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void HeaderRunningPastTheEndIsRefused()
    {
        using var dir = new TempFolder();
        string path = dir.PathOf("header.gguf");
        File.WriteAllBytes(path, File.ReadAllBytes(Intact)[..5000]); // ends inside the token list
        var e = Assert.Throws<UserInputException>(() => new GgufFile(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("tokenizer.ggml.tokens", e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }

    [Fact]
    public void TensorDataOutOfRangeNamesTheTensor()
    {
        using var dir = new TempFolder();
        string path = dir.PathOf("cut.gguf");
        byte[] bytes = File.ReadAllBytes(Intact);
        File.WriteAllBytes(path, bytes[..(bytes.Length - 100)]);
        string last;
        using (var f = new GgufFile(Intact)) last = f.Tensors.MaxBy(t => t.Offset)!.Name;
        var e = Assert.Throws<UserInputException>(() => new GgufFile(path));
        Assert.Contains(path, e.Message);
        Assert.Contains($"tensor '{last}'", e.Message);
    }

    [Fact]
    public void UnknownVersionIsRefused()
    {
        using var dir = new TempFolder();
        string path = dir.PathOf("v9.gguf");
        byte[] bytes = File.ReadAllBytes(Intact);
        bytes[4] = 9;
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<UserInputException>(() => new GgufFile(path));
        Assert.Contains("version 9", e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void UnknownGgmlTypeNamesTheTensor()
    {
        using var dir = new TempFolder();
        string path = dir.PathOf("t.gguf");
        var w = new GgufWriter();
        w.Add("general.architecture", "llama");
        using var t = torch.ones(4, 32);
        w.AddTensor("blk.0.attn_q.weight", GgmlType.F32, t);
        w.Write(path);
        byte[] bytes = File.ReadAllBytes(path);
        int nameEnd = IndexOf(bytes, "blk.0.attn_q.weight"u8) + "blk.0.attn_q.weight".Length;
        int typeOffset = nameEnd + 4 + 2 * 8; // n_dims, ne[0], ne[1]
        Assert.Equal((byte)GgmlType.F32, bytes[typeOffset]);
        bytes[typeOffset] = 99;
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<UserInputException>(() => new GgufFile(path));
        Assert.Contains("tensor 'blk.0.attn_q.weight'", e.Message);
        Assert.Contains("type 99", e.Message);
    }

    [Fact]
    public void WriterRoundTripsEveryValueTypeIncludingNestedArrays()
    {
        using var dir = new TempFolder();
        string path = dir.PathOf("kv.gguf");
        var w = new GgufWriter();
        object[] values = [(byte)1, (sbyte)-2, (ushort)3, (short)-4, 5u, -6, 7.5f, true, "ü", 8UL, -9L, 10.25];
        for (int i = 0; i < values.Length; i++) w.Add($"k{i}", values[i]);
        w.Add("strings", new[] { "a", "", "▁b" });
        w.Add("nested", new GgufArray(GgufValueType.Array, new[] { GgufArray.Of([1, 2]), GgufArray.Of([3]) }));
        w.Write(path);

        using var f = new GgufFile(path);
        Assert.Empty(f.Tensors);
        for (int i = 0; i < values.Length; i++) Assert.Equal(values[i], f.Get($"k{i}"));
        Assert.Equal(["a", "", "▁b"], f.GetArray<string>("strings")!);
        var nested = f.GetArray<GgufArray>("nested")!;
        Assert.Equal([1, 2], (int[])nested[0].Items);
        Assert.Equal([3], (int[])nested[1].Items);
    }

    private static int IndexOf(byte[] haystack, ReadOnlySpan<byte> needle) => haystack.AsSpan().IndexOf(needle);
}
