using FinQLoRA.Demo;
using FinQLoRA.Models;
using FinQLoRA.Formats.Checkpoints;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Fuzz;

/// <summary>
/// What the fuzz cases damage, made once per test class from a fixed seed (no ../shared): a random one-layer Llama
/// folder with a byte-level tokenizer, and a rank-4 q_proj LoRA adapter for it.
/// </summary>
internal sealed class FuzzInputs : IDisposable
{
    public static readonly ModelConfig Config = new()
    {
        HiddenSize = 16, IntermediateSize = 32, NumLayers = 1, NumHeads = 2, NumKvHeads = 1, HeadDim = 8,
        VocabSize = ByteLevelTokenizerJson.VocabSize, MaxPositionEmbeddings = 64, EosTokenIds = [256],
    };

    public const int Rank = 4;
    public const string QA = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";
    public const string QB = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight";

    /// <summary>The folder holding <see cref="Model"/> and <see cref="Adapter"/>; cases may read it, never change it.</summary>
    public string Root { get; } = Directory.CreateTempSubdirectory("finqlora-fuzz-").FullName;

    public string Model => Path.Combine(Root, "model");
    public string Adapter => Path.Combine(Root, "adapter");

    /// <summary>The corpus folder copied beside the test assembly.</summary>
    public static string Corpus => Path.Combine(AppContext.BaseDirectory, "Fuzz", "corpus");

    public FuzzInputs()
    {
        RandomLlama.WriteHfFolder(Config, Model, seed: 11);
        File.WriteAllText(Path.Combine(Model, "tokenizer.json"), ByteLevelTokenizerJson.Create());
        Directory.CreateDirectory(Adapter);
        File.Copy(Path.Combine(Corpus, "adapter", "good_adapter_config.json"), Path.Combine(Adapter, "adapter_config.json"));
        using var gen = new Generator(12);
        using var a = randn([Rank, Config.HiddenSize], generator: gen);
        using var b = randn([Config.QDim, Rank], generator: gen);
        SafetensorsFile.Write(Path.Combine(Adapter, "adapter_model.safetensors"), new Dictionary<string, Tensor> { [QA] = a, [QB] = b });
    }

    /// <summary>A copy of a folder into <paramref name="destination"/>, to damage without touching the original.</summary>
    public static string CopyFolder(string source, string destination)
    {
        Directory.CreateDirectory(destination);
        foreach (string f in Directory.GetFiles(source)) File.Copy(f, Path.Combine(destination, Path.GetFileName(f)));
        return destination;
    }

    /// <summary>Rewrites a safetensors file with one tensor converted to another dtype (a role mismatch).</summary>
    public static void Retype(string file, string tensor, ScalarType dtype)
    {
        var tensors = new Dictionary<string, Tensor>();
        using (var f = new SafetensorsFile(file))
            foreach (var e in f.Entries) tensors[e.Name] = e.Name == tensor ? f.Read(e.Name).to(dtype) : f.Read(e.Name);
        SafetensorsFile.Write(file, tensors);
        foreach (var t in tensors.Values) t.Dispose();
    }

    public void Dispose()
    {
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { }
    }
}
