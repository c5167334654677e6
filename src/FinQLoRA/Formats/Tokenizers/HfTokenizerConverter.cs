using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using FinQLoRA.Formats.Gguf;

namespace FinQLoRA.Formats.Tokenizers;

/// <summary>
/// Hugging Face <c>tokenizer.json</c> + <c>tokenizer_config.json</c> ↔ <see cref="GgufTokenizerData"/>, for the two
/// Llama tokenizer families:
/// <list type="bullet">
/// <item>SentencePiece-style BPE (<c>byte_fallback: true</c>, Llama 1/2, stories260K) ↔ GGUF "llama". GGUF drives this
/// tokenizer by scores, not merges. A SentencePiece BPE vocabulary lists pieces in merge order, so piece k (counting
/// from the first normal piece) gets score −k, which reproduces the original scores; going back, merges are derived
/// from the scores as transformers does (<see cref="SentencePieceMerges"/>).</item>
/// <item>Byte-level BPE with the Llama 3 pre-tokenizer ↔ GGUF "gpt2" with <c>tokenizer.ggml.pre = "llama-bpe"</c>
/// (tokens, types and merges carried over unchanged).</item>
/// </list>
/// </summary>
public static partial class HfTokenizerConverter
{
    /// <summary>The Llama 3 pre-tokenizer split regex, as in Meta's tokenizer.json.</summary>
    public const string Llama3Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    [GeneratedRegex(@"^<0x[0-9A-Fa-f]{2}>$")]
    private static partial Regex ByteToken();

    public static GgufTokenizerData FromHuggingFace(string folder, int? vocabSize = null)
    {
        string jsonPath = Path.Combine(folder, "tokenizer.json");
        if (!File.Exists(jsonPath))
            throw new UserInputException($"{folder}: no tokenizer.json; GGUF embeds the tokenizer, so the model folder needs one (a fast tokenizer)");
        var root = ParseObject(jsonPath);
        string configPath = Path.Combine(folder, "tokenizer_config.json");
        var config = File.Exists(configPath) ? ParseObject(configPath) : new JsonObject();

        var model = root["model"] as JsonObject ?? throw new UserInputException($"{jsonPath}: missing 'model'");
        string type = model["type"]?.GetValue<string>() ?? "BPE";
        if (type != "BPE")
            throw new UserInputException($"{jsonPath}: tokenizer model '{type}' is not supported (BPE only: SentencePiece-style or byte-level Llama 3)");
        var vocab = model["vocab"] as JsonObject ?? throw new UserInputException($"{jsonPath}: missing 'model.vocab'");

        var byId = new Dictionary<int, string>();
        foreach (var (piece, idNode) in vocab) byId[idNode!.GetValue<int>()] = piece;
        var added = new Dictionary<int, bool>(); // id → special
        foreach (var a in root["added_tokens"] as JsonArray ?? [])
        {
            int id = a!["id"]!.GetValue<int>();
            byId[id] = a["content"]!.GetValue<string>();
            added[id] = a["special"]?.GetValue<bool>() ?? false;
        }
        int count = Math.Max(byId.Count == 0 ? 0 : byId.Keys.Max() + 1, vocabSize ?? 0);
        var tokens = new string[count];
        var types = new int[count];
        string? unk = model["unk_token"]?.GetValue<string>();
        bool sentencePiece = model["byte_fallback"]?.GetValue<bool>() ?? false;
        for (int i = 0; i < count; i++)
        {
            if (!byId.TryGetValue(i, out var piece))
            {
                tokens[i] = $"[PAD{i}]"; // llama.cpp's filler for ids the tokenizer does not use
                types[i] = (int)GgufTokenType.Unused;
                continue;
            }
            tokens[i] = piece;
            types[i] = (int)(piece == unk ? GgufTokenType.Unknown
                : added.TryGetValue(i, out bool special) ? (special ? GgufTokenType.Control : GgufTokenType.UserDefined)
                : sentencePiece && ByteToken().IsMatch(piece) ? GgufTokenType.Byte
                : GgufTokenType.Normal);
        }

        int? IdOf(string key)
        {
            string? text = config[key] switch
            {
                JsonValue v when v.TryGetValue(out string? s) => s,
                JsonObject o => o["content"]?.GetValue<string>(),
                _ => null,
            };
            if (text == null) return null;
            int i = Array.IndexOf(tokens, text);
            return i >= 0 ? i : throw new UserInputException($"{configPath}: '{key}' is '{text}', which is not in the vocabulary of {jsonPath}");
        }

        int? bos = IdOf("bos_token"), eos = IdOf("eos_token");
        var template = TemplateTokens(root["post_processor"]);
        bool? addBos = config["add_bos_token"]?.GetValue<bool>() ?? (bos is int b ? template.First == b : null);
        bool? addEos = config["add_eos_token"]?.GetValue<bool>() ?? (eos is int e ? template.Last == e : null);
        string? chat = config["chat_template"] switch
        {
            JsonValue v => v.GetValue<string>(),
            JsonArray list => list.FirstOrDefault(t => t?["name"]?.GetValue<string>() == "default")?["template"]?.GetValue<string>(),
            _ => null,
        };

        var common = new GgufTokenizerData
        {
            Model = "",
            Tokens = tokens,
            TokenTypes = types,
            BosId = bos,
            EosId = eos,
            UnkId = unk != null && Array.IndexOf(tokens, unk) is int u and >= 0 ? u : null,
            PadId = IdOf("pad_token"),
            AddBos = addBos,
            AddEos = addEos,
            ChatTemplate = chat,
        };

        if (sentencePiece)
        {
            int firstNormal = Array.IndexOf(types, (int)GgufTokenType.Normal);
            var scores = new float[count];
            for (int i = 0; i < count; i++)
                if (types[i] == (int)GgufTokenType.Normal) scores[i] = -(i - firstNormal);
            return common with { Model = "llama", Scores = scores };
        }

        string? pattern = FindSplitPattern(root["pre_tokenizer"]);
        if (pattern != Llama3Pattern)
            throw new UserInputException($"{jsonPath}: byte-level BPE with pre-tokenizer pattern {(pattern == null ? "(none)" : $"'{pattern}'")} is not supported; only the Llama 3 pre-tokenizer (GGUF 'llama-bpe') is");
        var merges = (model["merges"] as JsonArray ?? []).Select(m => m switch
        {
            JsonArray pair => $"{pair[0]!.GetValue<string>()} {pair[1]!.GetValue<string>()}",
            _ => m!.GetValue<string>(),
        }).ToArray();
        return common with { Model = "gpt2", Pre = "llama-bpe", Merges = merges };
    }

    private static JsonObject ParseObject(string path)
    {
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                ?? throw new UserInputException($"{path}: expected a JSON object");
        }
        catch (JsonException e) { throw new UserInputException($"{path}: not valid JSON ({e.Message})"); }
    }

    /// <summary>First and last special token ids of the post-processor's single-sequence template.</summary>
    private static (int? First, int? Last) TemplateTokens(JsonNode? processor)
    {
        if (processor is not JsonObject p) return (null, null);
        if (p["type"]?.GetValue<string>() == "Sequence")
        {
            foreach (var inner in p["processors"] as JsonArray ?? [])
            {
                var found = TemplateTokens(inner);
                if (found.First != null || found.Last != null) return found;
            }
            return (null, null);
        }
        if (p["type"]?.GetValue<string>() != "TemplateProcessing" || p["single"] is not JsonArray single || single.Count == 0)
            return (null, null);
        int? Id(JsonNode? item)
        {
            string? name = item?["SpecialToken"]?["id"]?.GetValue<string>();
            return name != null && p["special_tokens"]?[name]?["ids"] is JsonArray ids && ids.Count == 1 ? ids[0]!.GetValue<int>() : null;
        }
        return (Id(single[0]), Id(single[^1]));
    }

    private static string? FindSplitPattern(JsonNode? pre) => pre switch
    {
        JsonObject o when o["type"]?.GetValue<string>() == "Sequence" =>
            (o["pretokenizers"] as JsonArray ?? []).Select(FindSplitPattern).FirstOrDefault(x => x != null),
        JsonObject o when o["type"]?.GetValue<string>() == "Split" => o["pattern"]?["Regex"]?.GetValue<string>(),
        _ => null,
    };

    /// <summary>Writes tokenizer.json, tokenizer_config.json and special_tokens_map.json into <paramref name="folder"/>.</summary>
    public static void WriteHuggingFace(GgufTokenizerData data, string folder, int modelMaxLength)
    {
        var (tokenizer, config) = ToHuggingFaceJson(data, modelMaxLength);
        var options = new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        IO.AtomicFile.WriteAllText(Path.Combine(folder, "tokenizer.json"), tokenizer.ToJsonString(options));
        IO.AtomicFile.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), config.ToJsonString(options));
        var map = new JsonObject();
        foreach (var key in new[] { "bos_token", "eos_token", "unk_token", "pad_token" })
            if (config[key] is JsonValue v) map[key] = v.DeepClone();
        IO.AtomicFile.WriteAllText(Path.Combine(folder, "special_tokens_map.json"), map.ToJsonString(options));
    }

    /// <summary>The contents of tokenizer.json and tokenizer_config.json for an embedded GGUF vocabulary.</summary>
    public static (JsonObject Tokenizer, JsonObject Config) ToHuggingFaceJson(GgufTokenizerData data, int modelMaxLength) => data.Model switch
    {
        "llama" => SentencePieceJson(data, modelMaxLength),
        "gpt2" => ByteLevelJson(data, modelMaxLength),
        _ => throw new UserInputException($"GGUF tokenizer model '{data.Model}' cannot be written as a Hugging Face tokenizer (supported: llama, gpt2)"),
    };

    private static JsonObject AddedToken(int id, string content, bool special) => new()
    {
        ["id"] = id, ["content"] = content, ["single_word"] = false, ["lstrip"] = false,
        ["rstrip"] = false, ["normalized"] = false, ["special"] = special,
    };

    private static JsonArray AddedTokens(GgufTokenizerData d, Func<GgufTokenType, bool> isAdded)
    {
        var list = new JsonArray();
        for (int i = 0; i < d.Tokens.Count; i++)
        {
            var t = d.TypeOf(i);
            if (isAdded(t)) list.Add(AddedToken(i, d.Tokens[i], t != GgufTokenType.UserDefined));
        }
        return list;
    }

    private static JsonObject Template(GgufTokenizerData d)
    {
        JsonArray single = new(), pair = new();
        var special = new JsonObject();
        void Special(int? id, bool enabled)
        {
            if (id is not int i || !enabled) return;
            string name = d.Tokens[i];
            special[name] = new JsonObject { ["id"] = name, ["ids"] = new JsonArray(i), ["tokens"] = new JsonArray(name) };
        }
        bool bos = d.AddBos ?? true, eos = d.AddEos ?? false;
        JsonObject Tok(int id, int typeId) => new() { ["SpecialToken"] = new JsonObject { ["id"] = d.Tokens[id], ["type_id"] = typeId } };
        JsonObject Seq(string s, int typeId) => new() { ["Sequence"] = new JsonObject { ["id"] = s, ["type_id"] = typeId } };
        if (bos && d.BosId is int b) { single.Add(Tok(b, 0)); pair.Add(Tok(b, 0)); }
        single.Add(Seq("A", 0)); pair.Add(Seq("A", 0));
        if (eos && d.EosId is int e) { single.Add(Tok(e, 0)); pair.Add(Tok(e, 0)); }
        if (bos && d.BosId is int b2) pair.Add(Tok(b2, 1));
        pair.Add(Seq("B", 1));
        if (eos && d.EosId is int e2) pair.Add(Tok(e2, 1));
        Special(d.BosId, bos);
        Special(d.EosId, eos);
        return new JsonObject { ["type"] = "TemplateProcessing", ["single"] = single, ["pair"] = pair, ["special_tokens"] = special };
    }

    private static (JsonObject Tokenizer, JsonObject Config) SentencePieceJson(GgufTokenizerData d, int maxLength)
    {
        if (d.Scores == null) throw new UserInputException("GGUF tokenizer 'llama' has no tokenizer.ggml.scores; cannot derive its merges");
        var vocab = new JsonObject();
        for (int i = 0; i < d.Tokens.Count; i++) vocab[d.Tokens[i]] = i;
        var merges = new JsonArray(SentencePieceMerges.Generate(d.Tokens, d.Scores).Select(m => (JsonNode)m).ToArray());
        string? unk = d.UnkId is int u ? d.Tokens[u] : null;
        var tokenizer = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = AddedTokens(d, t => t is GgufTokenType.Control or GgufTokenType.Unknown or GgufTokenType.UserDefined),
            ["normalizer"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["normalizers"] = new JsonArray(
                    new JsonObject { ["type"] = "Prepend", ["prepend"] = "▁" },
                    new JsonObject { ["type"] = "Replace", ["pattern"] = new JsonObject { ["String"] = " " }, ["content"] = "▁" }),
            },
            ["pre_tokenizer"] = null,
            ["post_processor"] = Template(d),
            ["decoder"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["decoders"] = new JsonArray(
                    new JsonObject { ["type"] = "Replace", ["pattern"] = new JsonObject { ["String"] = "▁" }, ["content"] = " " },
                    new JsonObject { ["type"] = "ByteFallback" },
                    new JsonObject { ["type"] = "Fuse" },
                    new JsonObject { ["type"] = "Strip", ["content"] = " ", ["start"] = 1, ["stop"] = 0 }),
            },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = unk, ["continuing_subword_prefix"] = null,
                ["end_of_word_suffix"] = null, ["fuse_unk"] = true, ["byte_fallback"] = true, ["ignore_merges"] = false,
                ["vocab"] = vocab, ["merges"] = merges,
            },
        };
        var config = BaseConfig(d, maxLength, "LlamaTokenizerFast");
        config["legacy"] = true;
        config["clean_up_tokenization_spaces"] = false;
        config["padding_side"] = "left";
        config["unk_token"] = unk;
        return (tokenizer, config);
    }

    private static (JsonObject Tokenizer, JsonObject Config) ByteLevelJson(GgufTokenizerData d, int maxLength)
    {
        if (d.Pre != "llama-bpe")
            throw new UserInputException($"GGUF byte-level tokenizer with pre-tokenizer '{d.Pre ?? "(none)"}' is not supported; only 'llama-bpe' (Llama 3) is");
        var vocab = new JsonObject();
        for (int i = 0; i < d.Tokens.Count; i++)
            if (d.TypeOf(i) is GgufTokenType.Normal or GgufTokenType.Byte or GgufTokenType.Unknown) vocab[d.Tokens[i]] = i;
        JsonObject ByteLevel(bool prefix, bool trim, bool regex) => new()
        {
            ["type"] = "ByteLevel", ["add_prefix_space"] = prefix, ["trim_offsets"] = trim, ["use_regex"] = regex,
        };
        var tokenizer = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = AddedTokens(d, t => t is GgufTokenType.Control or GgufTokenType.UserDefined),
            ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["pretokenizers"] = new JsonArray(
                    new JsonObject
                    {
                        ["type"] = "Split", ["pattern"] = new JsonObject { ["Regex"] = Llama3Pattern },
                        ["behavior"] = "Isolated", ["invert"] = false,
                    },
                    ByteLevel(false, true, false)),
            },
            ["post_processor"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["processors"] = new JsonArray(ByteLevel(true, false, true), Template(d)),
            },
            ["decoder"] = ByteLevel(true, true, true),
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = null,
                ["end_of_word_suffix"] = null, ["fuse_unk"] = false, ["byte_fallback"] = false, ["ignore_merges"] = true,
                ["vocab"] = vocab,
                ["merges"] = new JsonArray((d.Merges ?? []).Select(m => (JsonNode)m).ToArray()),
            },
        };
        var config = BaseConfig(d, maxLength, "PreTrainedTokenizerFast");
        config["clean_up_tokenization_spaces"] = true;
        config["model_input_names"] = new JsonArray("input_ids", "attention_mask");
        return (tokenizer, config);
    }

    private static JsonObject BaseConfig(GgufTokenizerData d, int maxLength, string tokenizerClass)
    {
        var decoder = new JsonObject();
        for (int i = 0; i < d.Tokens.Count; i++)
        {
            var t = d.TypeOf(i);
            if (t is GgufTokenType.Control or GgufTokenType.Unknown or GgufTokenType.UserDefined)
            {
                var entry = AddedToken(i, d.Tokens[i], t != GgufTokenType.UserDefined);
                entry.Remove("id");
                decoder[i.ToString(System.Globalization.CultureInfo.InvariantCulture)] = entry;
            }
        }
        var config = new JsonObject
        {
            ["add_bos_token"] = d.AddBos ?? true,
            ["add_eos_token"] = d.AddEos ?? false,
            ["added_tokens_decoder"] = decoder,
            ["bos_token"] = d.BosId is int b ? d.Tokens[b] : null,
            ["eos_token"] = d.EosId is int e ? d.Tokens[e] : null,
            ["model_max_length"] = maxLength,
            ["pad_token"] = d.PadId is int p ? d.Tokens[p] : null,
            ["tokenizer_class"] = tokenizerClass,
        };
        if (d.ChatTemplate != null) config["chat_template"] = d.ChatTemplate;
        return config;
    }
}
