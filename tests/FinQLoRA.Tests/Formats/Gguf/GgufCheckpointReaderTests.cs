using FinQLoRA.Models;
using FinQLoRA.Formats.Checkpoints;
using FinQLoRA.Formats.Gguf;
using FinQLoRA.Tests.Support;
using TorchSharp;

namespace FinQLoRA.Tests.Formats.Gguf;

public sealed class GgufCheckpointReaderTests
{
    [SharedFact]
    public void Stories260KReadsBitIdenticalToTheHfCopy()
    {
        using var gguf = new GgufCheckpointReader(Shared.File("models/stories260K/stories260K.gguf"));
        using var hf = new HfCheckpointReader(Shared.File("models/stories260K-hf"));
        Assert.Equal(hf.Entries.Select(e => e.Name), gguf.Entries.Select(e => e.Name));
        foreach (var e in hf.Entries)
        {
            using var scope = torch.NewDisposeScope();
            var a = gguf.Read(e.Name);
            var b = hf.Read(e.Name);
            TensorAssert.BitIdentical(a, b, $"{e.Name} differs");
        }
    }

    [SharedFact]
    public void WithoutThePermutationQWouldDiffer()
    {
        // Guards the test above: q/k really are stored in a different row order in the two files.
        using var gguf = new GgufFile(Shared.File("models/stories260K/stories260K.gguf"));
        using var hf = new HfCheckpointReader(Shared.File("models/stories260K-hf"));
        using var stored = torch.from_array(RawF32(gguf, "blk.0.attn_k.weight")).reshape(32, 64);
        using var hfK = hf.Read("model.layers.0.self_attn.k_proj.weight");
        TensorAssert.NotBitIdentical(stored, hfK);
        using var permuted = RopePermutation.ToHf(stored, 4);
        TensorAssert.BitIdentical(permuted, hfK);
        using var back = RopePermutation.ToGguf(permuted, 4);
        TensorAssert.BitIdentical(back, stored);
    }

    private static unsafe float[] RawF32(GgufFile f, string name)
    {
        var info = f.Tensor(name);
        return new ReadOnlySpan<float>(f.Data(info), (int)info.ElementCount).ToArray();
    }

    [SharedFact]
    public void ConfigAndTokenizerComeFromTheMetadata()
    {
        using var gguf = new GgufCheckpointReader(Shared.File("models/stories260K/stories260K.gguf"));
        var hf = ModelConfig.Load(Shared.File("models/stories260K-hf"));
        // The GGUF says context 2048 where the HF copy says the training length 512; everything else agrees.
        IReadOnlyList<int> eos = [2];
        Assert.Equal(hf with { MaxPositionEmbeddings = 2048, EosTokenIds = eos }, gguf.Config with { EosTokenIds = eos });
        Assert.Equal([2], gguf.Config.EosTokenIds);
        var tok = gguf.Tokenizer!;
        Assert.Equal("llama", tok.Model);
        Assert.Equal(512, tok.Tokens.Count);
        Assert.Equal((1, 2, 0), (tok.BosId, tok.EosId, tok.UnkId));
        Assert.Null(tok.PadId);
        Assert.Null(tok.AddBos);
        Assert.Equal(GgufTokenType.Byte, tok.TypeOf(3));
        Assert.Equal(GgufTokenType.Control, tok.TypeOf(1));
    }
}
