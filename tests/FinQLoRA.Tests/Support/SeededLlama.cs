using FinQLoRA.Loading;
using FinQLoRA.Demo;
using FinQLoRA.Models;
using FinQLoRA.Formats.Gguf;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Support;

/// <summary>
/// A seeded random Llama (FinQLoRA.Demo.RandomLlama's weights) for tests that need "a Llama", not stories260K's
/// trained weights or its tokenizer: they run in a fresh clone without ../shared. <see cref="Folder"/> has
/// stories260K's shapes (so parameter counts and prompt ids carry over) and <see cref="SeededTokenizer"/>'s files.
/// </summary>
public static class SeededLlama
{
    /// <summary>stories260K's shapes: vocab 512, hidden 64, 5 layers, 8 heads, 4 KV heads, FFN 172, untied head.</summary>
    public static readonly ModelConfig Stories260KShapes = new()
    {
        HiddenSize = 64, IntermediateSize = 172, NumLayers = 5, NumHeads = 8, NumKvHeads = 4, HeadDim = 8,
        VocabSize = SeededTokenizer.VocabSize, MaxPositionEmbeddings = 512, RmsNormEps = 1e-5, RopeTheta = 10000,
        TieWordEmbeddings = false, BosTokenId = SeededTokenizer.Bos, EosTokenIds = [SeededTokenizer.Eos],
    };

    /// <summary>Two layers of ~1.1M weights each (hidden 256, FFN 1152): wide enough that the managed single-token step
    /// splits its products over the torch threads.</summary>
    public static ModelConfig WideShapes => Stories260KShapes with { HiddenSize = 256, IntermediateSize = 1152, NumLayers = 2, NumHeads = 4, NumKvHeads = 2, HeadDim = 64 };

    public const long Seed = 260;

    private static readonly Lazy<string> SharedFolder = new(() =>
    {
        var temp = new TempFolder();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => temp.Dispose();
        return Write(temp.PathOf("seeded-llama"), Stories260KShapes, Seed);
    });

    /// <summary>One HF folder per test run with <see cref="Stories260KShapes"/>, seed <see cref="Seed"/> and the seeded
    /// tokenizer; tests read it and never change it (write your own with <see cref="Write"/> to damage one).</summary>
    public static string Folder => SharedFolder.Value;

    private static readonly Lazy<string> SharedGguf = new(() =>
    {
        string file = Path.Combine(Path.GetDirectoryName(Folder)!, "seeded-llama.gguf");
        ModelConverter.HfToGguf(Folder, file, GgmlType.F32);
        return file;
    });

    /// <summary><see cref="Folder"/> converted to an F32 GGUF (by our converter, so a reader test on it checks our
    /// writer and reader against each other; the real stories260K.gguf is the independent check). Read-only, like Folder.</summary>
    public static string Gguf => SharedGguf.Value;

    /// <summary>Copies <see cref="Folder"/> to <paramref name="folder"/> (for a test that needs the folder's name or
    /// changes its files); returns <paramref name="folder"/>.</summary>
    public static string CopyTo(string folder)
    {
        Directory.CreateDirectory(folder);
        foreach (string file in Directory.GetFiles(Folder)) File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
        return folder;
    }

    /// <summary>Loads <see cref="Folder"/> in fp32.</summary>
    public static DecoderModel Load() => ModelLoading.LoadModel(Folder, new ModelLoadOptions { DType = ScalarType.Float32 });

    /// <summary>
    /// Writes an HF folder: config.json and model.safetensors from RandomLlama, the tokenizer files of
    /// <paramref name="tokenizerFolder"/> (tokenizer.json, tokenizer_config.json) or else the seeded tokenizer's, and a
    /// PROVENANCE.md like the shared models have (so side-file checks see the same set). Returns <paramref name="folder"/>.
    /// </summary>
    public static string Write(string folder, ModelConfig config, long seed, ScalarType dtype = ScalarType.Float32, string? tokenizerFolder = null)
    {
        RandomLlama.WriteHfFolder(config, folder, seed, dtype);
        if (tokenizerFolder == null) SeededTokenizer.Write(folder);
        else
            foreach (string f in new[] { "tokenizer.json", "tokenizer_config.json" })
                File.Copy(Path.Combine(tokenizerFolder, f), Path.Combine(folder, f));
        File.WriteAllText(Path.Combine(folder, "PROVENANCE.md"),
            $"# Seeded random Llama\n\nWritten by the tests: FinQLoRA.Demo.RandomLlama, seed {seed}, {dtype}; not a trained model.\n");
        return folder;
    }
}
