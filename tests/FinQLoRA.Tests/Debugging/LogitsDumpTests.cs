using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Recipes;
using FinQLoRA.Inference;
using FinQLoRA.Tests.Support;
using FinQLoRA.Serving;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Debugging;

/// <summary><c>debug dump-logits</c> against llama.cpp (independent) and against our own generate path.</summary>
public sealed class LogitsDumpTests
{
    private const string Prompt = "Lily and Ben were friends. One day they";

    /// <summary>The HF folder and the GGUF file (two loaders) both give llama.cpp's logits on every position, within
    /// the 1e-4 the forward cross-checks use (LlamaForwardCrossCheckTests), and llama.cpp's prompt ids.</summary>
    [SharedTheory]
    [InlineData("models/stories260K-hf")]
    [InlineData("models/stories260K/stories260K.gguf")]
    public void LogitsOfEveryPositionAreLlamaCpps(string model)
    {
        using var temp = new TempFolder();
        string gguf = Shared.File("models/stories260K/stories260K.gguf");
        string output = temp.PathOf("logits.safetensors");
        DumpFiles.Run("debug", "dump-logits", "--model", Shared.File(model), "--dtype", "f32", "--prompt", Prompt, "--out", output);

        int[] ids = LlamaCppReference.Tokenize(gguf, Prompt);
        var (expected, _) = LlamaCppReference.Run(gguf, ids);
        using var scope = NewDisposeScope();
        var dump = DumpFiles.Read(output);
        Assert.Equal(["input_ids", "logits"], dump.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(ScalarType.Int64, dump["input_ids"].dtype);
        Assert.Equal(ids.Select(i => (long)i), dump["input_ids"].data<long>().ToArray());
        Assert.Equal(ScalarType.Float32, dump["logits"].dtype);
        Assert.Equal(new long[] { ids.Length, expected[0].Length }, dump["logits"].shape);
        var reference = tensor(expected.SelectMany(row => row).ToArray()).reshape(ids.Length, expected[0].Length);
        TensorAssert.MaxDiffBelow(reference, dump["logits"], 1e-4, $"{model}: dump-logits vs llama.cpp");
        Assert.True(File.Exists(output + ".json"), "the record beside the dump");
    }

    /// <summary>The last row is the one generate's prefill (KV cache, last position only) picks its first token from,
    /// and greedy generate's first token is its argmax. Within the 1e-4 of the llama.cpp cross-checks: the two paths
    /// differ in rounding only.</summary>
    [Fact]
    public void LastRowIsGeneratesFirstLogits()
    {
        using var temp = new TempFolder();
        string model = SeededLlama.Folder; // a seeded model: this compares two of our paths, so no real weights are needed
        string output = temp.PathOf("logits.safetensors");
        DumpFiles.Run("debug", "dump-logits", "--model", model, "--dtype", "f32", "--prompt", Prompt, "--out", output);

        var load = new ModelLoadOptions { DType = ScalarType.Float32 };
        using var scope = NewDisposeScope();
        var dump = DumpFiles.Read(output);
        long[] ids = dump["input_ids"].data<long>().ToArray();
        using (var m = ModelLoading.LoadModel(model, load))
        using (no_grad())
        {
            m.eval();
            // as TextGenerator's prefill: a cache sized for the prompt and more, a pad mask, the last position only
            using var cache = new KvCache(m.Config, 1, ids.Length + 8, m.ComputeDType, m.Device);
            var first = m.Forward(tensor(ids, [1, ids.Length]), ones([1, ids.Length], ScalarType.Int64), cache, lastOnly: true).reshape(-1);
            // the cached prefill runs other kernels (a mask, the cache's copies): equal to rounding, 1.2e-5 measured on stories260K's logits near 4
            TensorAssert.MaxDiffBelow(first, dump["logits"][^1], 1e-4, "last dumped row vs generate's prefill logits");
        }
        var generated = GenerateRecipe.Run(new GenerateRecipeOptions
        {
            ModelPath = model, Load = load, Prompts = [new GenerateRecipePrompt(Prompt, null, false)],
            Generation = new GenerationOptions { MaxNewTokens = 1, Temperature = 0 },
        });
        Assert.Equal(generated.Outputs[0].PromptIds.Select(i => (long)i), ids);
        Assert.Equal(dump["logits"][^1].argmax().item<long>(), (long)generated.Outputs[0].OutputIds[0]);
    }
}
