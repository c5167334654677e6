using System.Text.Json.Nodes;

namespace FinQLoRA.Tests.Support;

/// <summary>
/// A made-up SentencePiece-style BPE tokenizer (byte fallback, like stories260K's) with exactly 512 pieces:
/// &lt;unk&gt; &lt;s&gt; &lt;/s&gt;, the 256 byte pieces, then 253 pieces in merge order ("▁" + letter, letter pairs, then
/// the single characters). Any text encodes (unknown characters fall back to bytes), so a seeded model of
/// vocabulary 512 gets a working tokenizer without ../shared. Its ids mean nothing in stories260K.
/// With <c>llama3Chat</c> it also has Llama 3's five chat tokens (ids 512–516, BOS &lt;|begin_of_text|&gt;, EOS
/// &lt;|eot_id|&gt;) and a chat_template that names them, so chat is detected as Llama 3's format without the real
/// 128k-token tokenizer.
/// </summary>
public static class SeededTokenizer
{
    public const int VocabSize = 512;
    public const int Bos = 1, Eos = 2;

    /// <summary>The chat variant's added tokens, in id order from <see cref="VocabSize"/>.</summary>
    public static readonly string[] Llama3ChatTokens = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"];
    public const int Llama3ChatVocabSize = VocabSize + 5;
    public const int Llama3Bos = VocabSize, Llama3EndOfText = VocabSize + 1, Llama3Eot = VocabSize + 4;

    private const string Llama3ChatTemplate =
        "{{ bos_token }}{% for message in messages %}<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n" +
        "{{ message['content'] | trim }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}";

    private const string Letters = "etaoinshrdlucmfwygpbvkjxqz";

    /// <summary>Writes tokenizer.json, tokenizer_config.json, special_tokens_map.json and generation_config.json, with
    /// every field Hugging Face writes (as stories260K's files have them), so a GGUF round trip gives the same files.</summary>
    public static void Write(string folder, bool llama3Chat = false)
    {
        Directory.CreateDirectory(folder);
        var (bos, eos) = llama3Chat ? (Llama3ChatTokens[0], Llama3ChatTokens[4]) : ("<s>", "</s>");
        File.WriteAllText(Path.Combine(folder, "tokenizer.json"), TokenizerJson(llama3Chat).ToJsonString());
        var config = new JsonObject
        {
            ["add_bos_token"] = true, ["add_eos_token"] = false, ["added_tokens_decoder"] = AddedTokensDecoder(llama3Chat),
            ["bos_token"] = bos, ["eos_token"] = eos, ["unk_token"] = "<unk>", ["pad_token"] = null, ["tokenizer_class"] = "LlamaTokenizerFast",
            ["legacy"] = true, ["model_max_length"] = 512, ["clean_up_tokenization_spaces"] = false, ["padding_side"] = "left",
        };
        if (llama3Chat) config["chat_template"] = Llama3ChatTemplate;
        File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), config.ToJsonString());
        File.WriteAllText(Path.Combine(folder, "special_tokens_map.json"),
            new JsonObject { ["bos_token"] = bos, ["eos_token"] = eos, ["unk_token"] = "<unk>" }.ToJsonString());
        JsonNode eosIds = llama3Chat ? new JsonArray(Llama3EndOfText, Llama3Eot) : Eos;
        File.WriteAllText(Path.Combine(folder, "generation_config.json"),
            new JsonObject { ["bos_token_id"] = llama3Chat ? Llama3Bos : Bos, ["eos_token_id"] = eosIds, ["do_sample"] = false }.ToJsonString());
    }

    /// <summary>The special tokens: the three SentencePiece ones, then the chat variant's from <see cref="VocabSize"/>.</summary>
    private static IEnumerable<(int Id, string Content)> AddedTokens(bool llama3Chat) =>
        [(0, "<unk>"), (1, "<s>"), (2, "</s>"), .. llama3Chat ? Llama3ChatTokens.Select((t, i) => (VocabSize + i, t)) : []];

    /// <summary>One added token as HF writes it (tokenizer.json's added_tokens also carry the id).</summary>
    private static JsonObject Special(string content, int? id = null)
    {
        var o = id is int i ? new JsonObject { ["id"] = i } : new JsonObject();
        o["content"] = content;
        o["single_word"] = false;
        o["lstrip"] = false;
        o["rstrip"] = false;
        o["normalized"] = false;
        o["special"] = true;
        return o;
    }

    /// <summary>tokenizer_config.json's id → token table.</summary>
    private static JsonObject AddedTokensDecoder(bool llama3Chat)
    {
        var decoder = new JsonObject();
        foreach (var (id, content) in AddedTokens(llama3Chat))
            decoder[id.ToString(System.Globalization.CultureInfo.InvariantCulture)] = Special(content);
        return decoder;
    }

    private static JsonObject TokenizerJson(bool llama3Chat)
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
        JsonObject Replace(string pattern, string content) => new() { ["type"] = "Replace", ["pattern"] = new JsonObject { ["String"] = pattern }, ["content"] = content };
        JsonObject SpecialStep(string id, int typeId) => new() { ["SpecialToken"] = new JsonObject { ["id"] = id, ["type_id"] = typeId } };
        JsonObject SequenceStep(string id, int typeId) => new() { ["Sequence"] = new JsonObject { ["id"] = id, ["type_id"] = typeId } };
        return new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = new JsonArray(AddedTokens(llama3Chat).Select(t => (JsonNode)Special(t.Content, t.Id)).ToArray()),
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
