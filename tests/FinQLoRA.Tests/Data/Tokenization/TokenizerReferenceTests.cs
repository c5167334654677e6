using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Data.Tokenization;

/// <summary>
/// Our tokenizers against ids made by an independent implementation (@lenml/tokenizers, a port of Hugging Face's
/// tokenizers; tests/fixtures/tokenizer/make_reference.mjs made the fixtures and was cross-checked with HF's Rust
/// tokenizers).
/// </summary>
public sealed class TokenizerReferenceTests
{
    private static string Fixture(string name) => Path.Combine(Shared.RepoRoot, "tests", "fixtures", "tokenizer", name);

    private static readonly Lazy<LlamaTokenizer> Llama31 = new(() => TokenizerLoader.FromHuggingFace(Shared.File("models/llama-3.1-tokenizer")));

    [SharedFact]
    public void Llama31EncodesEveryFinLoRATestContextLikeHuggingFace()
    {
        var tokenizer = Llama31.Value;
        var contexts = new Dictionary<string, string[]>();
        int checkedLines = 0;
        var mismatches = new List<string>();
        foreach (string line in File.ReadLines(Fixture("llama31_finlora_test.jsonl")))
        {
            var o = JsonNode.Parse(line)!;
            string file = o["file"]!.GetValue<string>();
            int index = o["line"]!.GetValue<int>();
            if (!contexts.TryGetValue(file, out var lines))
                contexts[file] = lines = File.ReadAllLines(Shared.File($"data/finlora-test/{file}"));
            string context = JsonNode.Parse(lines[index])!["context"]!.GetValue<string>();
            int[] ids = tokenizer.Encode(context, addBos: false);
            if (o["ids"] is JsonArray expected)
                Assert.Equal(expected.Select(x => x!.GetValue<int>()), ids);
            string hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.ASCII.GetBytes(string.Join(",", ids))))[..16];
            if (hash != o["sha256"]!.GetValue<string>() || ids.Length != o["n"]!.GetValue<int>())
                mismatches.Add($"{file}:{index}");
            checkedLines++;
        }
        Assert.True(checkedLines > 12000, $"only {checkedLines} reference lines");
        Assert.True(mismatches.Count == 0, $"{mismatches.Count} of {checkedLines} contexts differ, e.g. {string.Join(", ", mismatches.Take(5))}");
    }

    [SharedFact]
    public void Llama31TrickyStringsAndInlineSpecialTokens() =>
        CheckAll(Llama31.Value, "llama31_tricky.jsonl", addBos: false);

    [SharedFact]
    public void Stories260kSentencePieceWithByteFallback() =>
        CheckAll(TokenizerLoader.FromHuggingFace(Shared.File("models/stories260K-hf")), "stories260k_reference.jsonl", addBos: true);

    [SharedFact]
    public void Llama31SpecialIdsComeFromTheConfigFiles()
    {
        var t = Llama31.Value;
        Assert.Equal(128000, t.BosId);
        Assert.Contains(128009, t.EosIds);
        Assert.Equal(128256, t.VocabSize);
        Assert.True(t.AddsBosByDefault);
        Assert.Equal("Apple's Q3 revenue rose 8% to $89.5 billion.", t.Decode(t.Encode("Apple's Q3 revenue rose 8% to $89.5 billion.", addBos: true)));
    }

    private static void CheckAll(ITextTokenizer tokenizer, string fixture, bool addBos)
    {
        var failures = new List<string>();
        int n = 0;
        foreach (string line in File.ReadLines(Fixture(fixture)))
        {
            var o = JsonNode.Parse(line)!;
            string text = o["text"]!.GetValue<string>();
            int[] expected = o["ids"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray();
            int[] actual = tokenizer.Encode(text, addBos);
            if (!expected.SequenceEqual(actual))
                failures.Add($"{JsonValue.Create(text).ToJsonString()}: expected [{string.Join(",", expected)}] got [{string.Join(",", actual)}]");
            n++;
        }
        Assert.True(n > 30);
        Assert.True(failures.Count == 0, $"{failures.Count}/{n} differ:\n" + string.Join("\n", failures.Take(8)));
    }
}
