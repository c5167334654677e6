using System.Text.Json.Nodes;
using FinQLoRA.Models;
using FinQLoRA.Formats.Checkpoints;
using FinQLoRA.Formats.Gguf;
using FinQLoRA.Tests.Support;
using TorchSharp;

namespace FinQLoRA.Tests.Formats.Gguf;

public sealed class ModelConverterTests
{
    private static string HfFolder => Shared.File("models/stories260K-hf");
    private static string OriginalGguf => Shared.File("models/stories260K/stories260K.gguf");

    private static readonly string[] Prompts =
    [
        "Once upon a time",
        "The little dog ran to the park, and",
        "Lily said: \"Mom, look!\" 123 ü",
    ];

    [SharedFact]
    public void HfToGgufF32ReproducesTheOriginalTensorsAndVocabulary()
    {
        using var dir = new TempFolder();
        string ours = dir.PathOf("ours.gguf");
        ModelConverter.HfToGguf(HfFolder, ours, GgmlType.F32);
        using var a = new GgufFile(ours);
        using var b = new GgufFile(OriginalGguf);
        Assert.Equal(b.Tensors.Select(t => t.Name).Order(), a.Tensors.Select(t => t.Name).Order());
        foreach (var t in b.Tensors)
            Assert.True(RawBytes(a, t.Name).SequenceEqual(RawBytes(b, t.Name)), $"{t.Name} differs from the original GGUF");
        foreach (var key in new[] { "tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type" })
            Assert.Equal((a.Get(key) as GgufArray)!.Items, (b.Get(key) as GgufArray)!.Items);
    }

    private static unsafe byte[] RawBytes(GgufFile f, string name)
    {
        var info = f.Tensor(name);
        return new ReadOnlySpan<byte>(f.Data(info), (int)info.ByteCount).ToArray();
    }

    [Fact]
    public void HfToGgufToHfIsBitExactForF32()
    {
        using var dir = new TempFolder();
        string gguf = dir.PathOf("m.gguf"), back = dir.PathOf("back");
        ModelConverter.HfToGguf(SeededLlama.Folder, gguf, GgmlType.F32);
        ModelConverter.GgufToHf(gguf, back);
        using (var a = new HfCheckpointReader(SeededLlama.Folder))
        using (var b = new HfCheckpointReader(back))
        {
            Assert.Equal(a.Entries.Select(e => e.Name), b.Entries.Select(e => e.Name));
            foreach (var e in a.Entries)
            {
                using var x = a.Read(e.Name);
                using var y = b.Read(e.Name);
                TensorAssert.BitIdentical(x, y, $"{e.Name} changed in the round trip");
            }
        }
        IReadOnlyList<int> eos = [2];
        Assert.Equal(ModelConfig.Load(SeededLlama.Folder) with { EosTokenIds = eos }, ModelConfig.Load(back) with { EosTokenIds = eos });
        foreach (var file in new[] { "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json" })
            Assert.True(JsonNode.DeepEquals(JsonNode.Parse(File.ReadAllText(Path.Combine(SeededLlama.Folder, file))),
                JsonNode.Parse(File.ReadAllText(Path.Combine(back, file)))), $"{file} changed in the round trip");
    }

    [Fact]
    public void ShardedHfOutputRoundTrips()
    {
        using var dir = new TempFolder();
        string back = dir.PathOf("sharded");
        long saved = ModelConverter.ShardBytes;
        ModelConverter.ShardBytes = 300_000; // about four shards for the 1.2 MB model (stories260K's shapes)
        try { ModelConverter.GgufToHf(SeededLlama.Gguf, back); }
        finally { ModelConverter.ShardBytes = saved; }
        Assert.True(File.Exists(Path.Combine(back, "model.safetensors.index.json")));
        Assert.True(Directory.GetFiles(back, "model-*-of-*.safetensors").Length > 1);
        using var a = new HfCheckpointReader(SeededLlama.Folder);
        using var b = new HfCheckpointReader(back);
        foreach (var e in a.Entries)
        {
            using var x = a.Read(e.Name);
            using var y = b.Read(e.Name);
            TensorAssert.BitIdentical(x, y, e.Name);
        }
    }

    [SharedFact]
    public void LlamaCppRunsOurGgufExactlyLikeTheOriginal()
    {
        using var dir = new TempFolder();
        string ours = dir.PathOf("ours.gguf");
        ModelConverter.HfToGguf(HfFolder, ours, GgmlType.F32);
        foreach (string prompt in Prompts)
            Assert.Equal(LlamaCppReference.Tokenize(OriginalGguf, prompt), LlamaCppReference.Tokenize(ours, prompt));
        Assert.Equal([1, 403, 407, 261, 378], LlamaCppReference.Tokenize(ours, "Once upon a time"));

        int[] ids = LlamaCppReference.Tokenize(OriginalGguf, Prompts[1]);
        var (expected, expectedGreedy) = LlamaCppReference.Run(OriginalGguf, ids, greedy: 32);
        var (actual, actualGreedy) = LlamaCppReference.Run(ours, ids, greedy: 32);
        Assert.True(LlamaCppReference.MaxAbsDiff(expected, actual) <= 1e-4, $"max |diff| {LlamaCppReference.MaxAbsDiff(expected, actual)}");
        Assert.Equal(expectedGreedy, actualGreedy);
    }

    [SharedFact]
    public void Q8_0RoundTripStaysWithinTheBoundAndLoadsInLlamaCpp()
    {
        using var dir = new TempFolder();
        string ours = dir.PathOf("q8.gguf");
        ModelConverter.HfToGguf(HfFolder, ours, GgmlType.Q8_0);
        using (var a = new GgufFile(ours))
        {
            Assert.Equal(GgmlType.Q8_0, a.Tensor("blk.0.attn_q.weight").Type);
            Assert.Equal(GgmlType.F16, a.Tensor("blk.0.ffn_down.weight").Type); // 172 columns: not whole Q8_0 blocks
            Assert.Equal(GgmlType.F32, a.Tensor("blk.0.attn_norm.weight").Type);
        }

        using var hf = new HfCheckpointReader(HfFolder);
        using var q8 = new GgufCheckpointReader(ours);
        foreach (var e in hf.Entries)
        {
            using var scope = torch.NewDisposeScope();
            var x = hf.Read(e.Name);
            var y = q8.Read(e.Name, torch.ScalarType.Float32);
            if (e.Shape.Length == 1)
            {
                TensorAssert.BitIdentical(x, y, e.Name); // norms stay F32
                continue;
            }
            if (e.Shape[^1] % 32 != 0)
            {
                TensorAssert.BitIdentical(x.to(torch.ScalarType.Float16).to(torch.ScalarType.Float32), y, e.Name);
                continue;
            }
            var blocks = x.reshape(-1, 32);
            var d = blocks.abs().amax([1L], keepdim: true) / 127f;
            var d16 = d.to(torch.ScalarType.Float16).to(torch.ScalarType.Float32);
            var bound = 0.5f * d + 127f * (d - d16).abs() + 1e-6f;
            var err = (blocks - y.reshape(-1, 32)).abs();
            Assert.True((err <= bound).all().item<bool>(), $"{e.Name}: Q8_0 error above the bound");
        }

        int[] ids = LlamaCppReference.Tokenize(OriginalGguf, Prompts[0]);
        var (exact, _) = LlamaCppReference.Run(OriginalGguf, ids);
        var (quantized, _) = LlamaCppReference.Run(ours, ids);
        double diff = LlamaCppReference.MaxAbsDiff(exact, quantized);
        Assert.InRange(diff, 1e-6, 0.5); // loads and runs; close to, but not the same as, F32
        Assert.Equal(432, LlamaCppReference.ArgMax(quantized[^1]));
    }

    [Fact]
    public void OurQ8_0BytesEqualLlamaCppsQuantization()
    {
        // llama.cpp's quantizer has no fallback for stories260K's 172-wide ffn_down, so use a model whose rows are
        // whole blocks: every 2-D tensor is then Q8_0 in both files and must match byte for byte.
        using var dir = new TempFolder();
        string folder = dir.PathOf("tiny");
        var config = new ModelConfig
        {
            HiddenSize = 64, IntermediateSize = 128, NumLayers = 2, NumHeads = 8, NumKvHeads = 4, HeadDim = 8,
            VocabSize = 512, MaxPositionEmbeddings = 256, BosTokenId = 1, EosTokenIds = [2],
        };
        SeededLlama.Write(folder, config, seed: 3);
        string ours = dir.PathOf("ours-q8.gguf"), f32 = dir.PathOf("f32.gguf"), theirs = dir.PathOf("theirs-q8.gguf");
        ModelConverter.HfToGguf(folder, ours, GgmlType.Q8_0);
        ModelConverter.HfToGguf(folder, f32, GgmlType.F32);
        LlamaCppReference.Tokenize(f32, "x"); // loads the native library before the quantizer binds to it
        Assert.True(LLama.LLamaQuantizer.Quantize(f32, theirs, LLama.Native.LLamaFtype.MOSTLY_Q8_0, nthread: 1, quantizeOutputTensor: true));
        using var a = new GgufFile(ours);
        using var b = new GgufFile(theirs);
        var matrices = b.Tensors.Where(t => t.Ne.Length == 2).ToList();
        Assert.Equal(2 + 7 * config.NumLayers, matrices.Count);
        foreach (var t in matrices)
        {
            Assert.Equal((GgmlType.Q8_0, GgmlType.Q8_0), (a.Tensor(t.Name).Type, t.Type));
            Assert.True(RawBytes(a, t.Name).SequenceEqual(RawBytes(b, t.Name)), $"{t.Name}: our Q8_0 bytes differ from llama.cpp's");
        }
    }

    [SharedFact]
    public void Llama3TokenizerEmbeddedByUsTokenizesLikeMetaInLlamaCpp()
    {
        using var dir = new TempFolder();
        string folder = dir.PathOf("tiny-llama3");
        var config = new ModelConfig
        {
            HiddenSize = 32, IntermediateSize = 64, NumLayers = 1, NumHeads = 4, NumKvHeads = 2, HeadDim = 8,
            VocabSize = 128256, MaxPositionEmbeddings = 256, RopeTheta = 500000, TieWordEmbeddings = true,
            RopeScaling = new RopeScaling("llama3", 8.0, 1.0, 4.0, 8192),
            BosTokenId = 128000, EosTokenIds = [128009], TorchDtype = "float16",
        };
        SeededLlama.Write(folder, config, seed: 7, torch.ScalarType.Float16, Shared.File("models/llama-3.1-tokenizer"));

        string gguf = dir.PathOf("tiny.gguf");
        ModelConverter.HfToGguf(folder, gguf);
        Assert.Equal([791, 6864, 315, 9822, 374, 12366, 13], LlamaCppReference.Tokenize(gguf, "The capital of France is Paris.", addBos: false));
        Assert.Equal(128000, LlamaCppReference.Tokenize(gguf, "Hi")[0]);

        // Back to HF: config (incl. llama3 RoPE scaling from rope_freqs) and the byte-level tokenizer survive.
        string back = dir.PathOf("back");
        ModelConverter.GgufToHf(gguf, back);
        var roundTrip = ModelConfig.Load(back);
        Assert.Equal(config.RopeScaling, roundTrip.RopeScaling);
        Assert.True(roundTrip.TieWordEmbeddings);
        Assert.Equal("float16", roundTrip.TorchDtype);
        var original = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "tokenizer.json")))!;
        Assert.True(JsonNode.DeepEquals(original, JsonNode.Parse(File.ReadAllText(Path.Combine(back, "tokenizer.json")))));
    }
}
