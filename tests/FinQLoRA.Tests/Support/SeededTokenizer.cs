using System.Text.Json.Nodes;

namespace FinQLoRA.Tests.Support;

/// <summary>
/// A made-up SentencePiece-style BPE tokenizer (byte fallback, like stories260K's) with exactly 512 pieces:
/// &lt;unk&gt; &lt;s&gt; &lt;/s&gt;, the 256 byte pieces, then 253 pieces in merge order ("▁" + letter, letter pairs, then
/// the single characters). Any text encodes (unknown characters fall back to bytes), so a seeded model of
/// vocabulary 512 gets a working tokenizer without ../shared. Its ids mean nothing in stories260K.
/// </summary>
public static class SeededTokenizer
{
    public const int VocabSize = 512;
    public const int Bos = 1, Eos = 2;

    private const string Letters = "etaoinshrdlucmfwygpbvkjxqz";

    /// <summary>Writes tokenizer.json, tokenizer_config.json, special_tokens_map.json and generation_config.json.</summary>
    public static void Write(string folder)
    {
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "tokenizer.json"), TokenizerJson().ToJsonString());
        File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), new JsonObject
        {
            ["add_bos_token"] = true, ["add_eos_token"] = false, ["bos_token"] = "<s>", ["eos_token"] = "</s>", ["unk_token"] = "<unk>",
            ["pad_token"] = null, ["tokenizer_class"] = "LlamaTokenizerFast", ["legacy"] = true, ["model_max_length"] = 512,
        }.ToJsonString());
        File.WriteAllText(Path.Combine(folder, "special_tokens_map.json"),
            new JsonObject { ["bos_token"] = "<s>", ["eos_token"] = "</s>", ["unk_token"] = "<unk>" }.ToJsonString());
        File.WriteAllText(Path.Combine(folder, "generation_config.json"),
            new JsonObject { ["bos_token_id"] = Bos, ["eos_token_id"] = Eos, ["do_sample"] = false }.ToJsonString());
    }

    private static JsonObject TokenizerJson()
    {
        var pieces = new List<string> { "<unk>", "<s>", "</s>" };
        pieces.AddRange(Enumerable.Range(0, 256).Select(b => $"<0x{b:X2}>"));
        var singles = new[] { "▁" }.Concat(Letters.Select(c => c.ToString())).Concat([".", ",", "!", "?"]).ToList();
        var merges = new List<(string Left, string Right)>();
        merges.AddRange(Letters.Select(c => ("▁", c.ToString())));
        foreach (char a in Letters)
            foreach (char b in Letters)
                merges.Add((a.ToString(), b.ToString()));
        merges = merges.Take(VocabSize - pieces.Count - singles.Count).ToList();
        pieces.AddRange(merges.Select(m => m.Left + m.Right));
        pieces.AddRange(singles);

        var vocab = new JsonObject();
        for (int i = 0; i < pieces.Count; i++) vocab[pieces[i]] = i;
        JsonObject Special(int id, string content) => new()
        {
            ["id"] = id, ["content"] = content, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
            ["normalized"] = false, ["special"] = true,
        };
        JsonObject Replace(string pattern, string content) => new() { ["type"] = "Replace", ["pattern"] = new JsonObject { ["String"] = pattern }, ["content"] = content };
        JsonObject SpecialStep(string id, int typeId) => new() { ["SpecialToken"] = new JsonObject { ["id"] = id, ["type_id"] = typeId } };
        JsonObject SequenceStep(string id, int typeId) => new() { ["Sequence"] = new JsonObject { ["id"] = id, ["type_id"] = typeId } };
        return new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = new JsonArray(Special(0, "<unk>"), Special(1, "<s>"), Special(2, "</s>")),
            ["normalizer"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["normalizers"] = new JsonArray(new JsonObject { ["type"] = "Prepend", ["prepend"] = "▁" }, Replace(" ", "▁")),
            },
            ["pre_tokenizer"] = null,
            ["post_processor"] = new JsonObject
            {
                ["type"] = "TemplateProcessing",
                ["single"] = new JsonArray(SpecialStep("<s>", 0), SequenceStep("A", 0)),
                ["pair"] = new JsonArray(SpecialStep("<s>", 0), SequenceStep("A", 0), SpecialStep("<s>", 1), SequenceStep("B", 1)),
                ["special_tokens"] = new JsonObject
                {
                    ["<s>"] = new JsonObject { ["id"] = "<s>", ["ids"] = new JsonArray(1), ["tokens"] = new JsonArray("<s>") },
                },
            },
            ["decoder"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["decoders"] = new JsonArray(Replace("▁", " "), new JsonObject { ["type"] = "ByteFallback" }, new JsonObject { ["type"] = "Fuse" },
                    new JsonObject { ["type"] = "Strip", ["content"] = " ", ["start"] = 1, ["stop"] = 0 }),
            },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = "<unk>", ["continuing_subword_prefix"] = null,
                ["end_of_word_suffix"] = null, ["fuse_unk"] = true, ["byte_fallback"] = true, ["ignore_merges"] = false,
                ["vocab"] = vocab,
                ["merges"] = new JsonArray(merges.Select(m => (JsonNode)JsonValue.Create($"{m.Left} {m.Right}")).ToArray()),
            },
        };
    }
}
