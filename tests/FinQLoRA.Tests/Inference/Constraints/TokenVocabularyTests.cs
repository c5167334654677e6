using System.Diagnostics;
using System.Text;
using System.Text.Json;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Inference;
using FinQLoRA.Inference.Constraints;
using FinQLoRA.Loading;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Inference.Constraints;

/// <summary>
/// The vocabulary's bytes against the tokenizer's own Decode: every token whose bytes are whole UTF-8 reads as those
/// bytes after a prompt token (the rule the served text follows, <see cref="IncrementalText.After"/>); texts with
/// multi-byte characters split over byte tokens read as the concatenated bytes of their ids; special tokens have no
/// bytes. On the seeded SentencePiece tokenizers and, from ../shared, Llama 3.1's byte-level BPE and stories260K
/// (HF folder and GGUF). And the allowed-token sets: each allowed token keeps the output live, each refused one kills it.
/// </summary>
public sealed class TokenVocabularyTests
{
    private static readonly string[] Texts =
    [
        "{\"name\": \"Zoë\", \"price\": 12.5}", "naïve café — 10 €", "日本語のテキスト", "emoji 😀 and 🏦!", "tab\tnew\nline \\ \"q\"", "  two  spaces",
    ];

    [Fact]
    public void SeededTokenizersMatchTheirDecode()
    {
        using var temp = new TempFolder();
        foreach (bool chat in new[] { false, true })
        {
            string dir = Path.Combine(temp.Path, chat ? "chat" : "plain");
            SeededTokenizer.Write(dir, llama3Chat: chat);
            CheckAgainstDecode(TokenizerLoader.FromHuggingFace(dir), expectedSpecial: chat ? 3 + 5 : 3);
        }
    }

    /// <summary>Also, for Llama 3.1's 128k byte-level vocabulary, inside a JSON string of a <c>json_object</c> answer
    /// nearly every token fits (the quote-bearing and control ones do not); the times of the vocabulary, the compile and
    /// the one mask walk are printed, not asserted (speed is the bench's: <c>bench constrained</c>). SentencePiece's
    /// encoding of the answer would begin with its dummy-prefix space, which no JSON value starts with.</summary>
    [SharedTheory]
    [InlineData("models/llama-3.1-tokenizer", 256, true)]
    [InlineData("models/stories260K-hf", 3, false)]
    [InlineData("models/stories260K/stories260K.gguf", 3, false)]
    public void SharedTokenizersMatchTheirDecodeAndFitInsideAJsonString(string path, int expectedSpecial, bool byteLevel)
    {
        var tokenizer = ModelLoading.LoadTokenizer(Shared.File(path));
        CheckAgainstDecode(tokenizer, expectedSpecial);
        if (!byteLevel) return;

        var clock = Stopwatch.StartNew();
        var cache = ConstraintCache.For(tokenizer);
        var vocabulary = cache.Vocabulary;
        double build = clock.Elapsed.TotalMilliseconds;
        clock.Restart();
        var constraint = cache.Get(ConstraintSpec.JsonObject());
        double compile = clock.Elapsed.TotalMilliseconds;
        int state = constraint.Start;
        foreach (int id in tokenizer.Encode("{\"k\": \"a long string value", addBos: false)) state = constraint.Advance(state, id);
        Assert.NotEqual(CompiledConstraint.Dead, state);
        clock.Restart();
        int allowed = constraint.Allowed(state).Sum(w => System.Numerics.BitOperations.PopCount(w));
        double walk = clock.Elapsed.TotalMilliseconds;
        Assert.InRange(allowed, vocabulary.Size / 2, vocabulary.Size - 1);
        Console.WriteLine($"{path}: vocabulary {build:F0} ms, json_object compile {compile:F0} ms ({constraint.NfaStates} NFA states), one in-string mask {walk:F0} ms, {allowed} of {vocabulary.Size} allowed");
    }

    private static void CheckAgainstDecode(ITextTokenizer tokenizer, int expectedSpecial)
    {
        var vocabulary = TokenVocabulary.From(tokenizer);
        Assert.Equal(tokenizer.VocabSize, vocabulary.Size);
        int anchor = tokenizer.Encode(" the", addBos: false)[^1];
        var strict = new UTF8Encoding(false, throwOnInvalidBytes: true);
        int whole = 0, special = 0;
        for (int id = 0; id < vocabulary.Size; id++)
        {
            var bytes = vocabulary.BytesOf(id);
            if (bytes is null)
            {
                special++;
                Assert.True(tokenizer.Decode([id]) == "" || tokenizer.EosIds.Contains(id) || id == tokenizer.BosId, $"token {id} has no bytes but decodes to '{tokenizer.Decode([id])}'");
                continue;
            }
            string text;
            try { text = strict.GetString(bytes); }
            catch (DecoderFallbackException) { continue; } // part of a character: checked through whole texts below
            whole++;
            Assert.True(text == IncrementalText.After(tokenizer, anchor, [id]), $"token {id}: bytes read '{text}', Decode '{IncrementalText.After(tokenizer, anchor, [id])}'");
        }
        Assert.Equal(expectedSpecial, special);
        Assert.True(whole > vocabulary.Size / 2, $"only {whole} of {vocabulary.Size} tokens are whole UTF-8");
        foreach (string t in Texts)
        {
            var ids = tokenizer.Encode(t, addBos: false);
            var bytes = ids.SelectMany(i => vocabulary.BytesOf(i)!).ToArray();
            Assert.Equal(IncrementalText.After(tokenizer, anchor, ids), strict.GetString(bytes));
        }
    }

    [Fact]
    public void AllowedTokensAreExactlyThoseThatKeepTheOutputLive()
    {
        using var temp = new TempFolder();
        SeededTokenizer.Write(temp.Path);
        var tokenizer = TokenizerLoader.FromHuggingFace(temp.Path);
        var cache = ConstraintCache.For(tokenizer);
        using var schema = JsonDocument.Parse("""{"type":"object","properties":{"side":{"enum":["buy","sell"]},"qty":{"type":"integer"}},"required":["side","qty"]}""");
        var constraint = cache.Get(ConstraintSpec.JsonSchema(schema.RootElement));
        Assert.Same(constraint, cache.Get(ConstraintSpec.JsonSchema(JsonDocument.Parse("{ \"type\": \"object\", \"properties\": {\"side\":{\"enum\":[\"buy\",\"sell\"]},\"qty\":{\"type\":\"integer\"}},\"required\":[\"side\",\"qty\"]}").RootElement)));

        // walk one valid answer token by token; at each state compare the allowed set with a brute-force check
        // (SentencePiece's encoding would begin with its dummy-prefix space, which no JSON value starts with: the
        // answer is spelled with byte tokens and letter pieces instead)
        string answer = "{\"side\": \"sell\", \"qty\": 120}";
        var vocabulary = cache.Vocabulary;
        var byteToken = Enumerable.Range(0, vocabulary.Size).Where(i => vocabulary.BytesOf(i) is { Length: 1 }).GroupBy(i => vocabulary.BytesOf(i)![0]).ToDictionary(g => g.Key, g => g.Last());
        var ids = answer.Select(c => byteToken[(byte)c]).ToArray();
        int state = constraint.Start, step = 0;
        foreach (int next in ids.Append(tokenizer.EosIds[0]))
        {
            var bits = constraint.Allowed(state);
            for (int id = 0; id < vocabulary.Size; id++)
            {
                bool allowed = (bits[id >> 6] & (1UL << (id & 63))) != 0;
                bool live = tokenizer.EosIds.Contains(id) ? constraint.IsAccepting(state) : constraint.Advance(state, id) != CompiledConstraint.Dead;
                Assert.True(allowed == live, $"token {id} ('{tokenizer.Decode([id])}') at state {state}: allowed {allowed}, live {live}");
            }
            Assert.Equal(step++ == ids.Length, constraint.IsComplete(state)); // complete once the closing brace is in
            state = constraint.Advance(state, next);
            Assert.NotEqual(CompiledConstraint.Dead, state);
        }
        Assert.True(constraint.IsAccepting(state));
    }
}
