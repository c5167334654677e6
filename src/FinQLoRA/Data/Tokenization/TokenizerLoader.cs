using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace FinQLoRA.Data.Tokenization;

/// <summary>
/// Builds a <see cref="LlamaTokenizer"/> from a Hugging Face <c>tokenizer.json</c> (+ <c>tokenizer_config.json</c>,
/// <c>generation_config.json</c> beside it). Two families are supported, both as Hugging Face defines them:
/// byte-level BPE with a pre-tokenizer regex (Llama 3.x), and SentencePiece-style BPE with byte fallback
/// (Llama 2, converted llama2.c models). We read tokenizer.json ourselves because Microsoft.ML.Tokenizers takes
/// vocabularies and merges, not that file.
/// </summary>
public static class TokenizerLoader
{
    // GPT-2's pre-tokenizer regex, used by ByteLevel pre-tokenizers with use_regex and no explicit Split.
    private const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    /// <param name="path">a folder holding tokenizer.json, or the tokenizer.json file itself</param>
    public static LlamaTokenizer FromHuggingFace(string path)
    {
        string file = Directory.Exists(path) ? Path.Combine(path, "tokenizer.json") : path;
        if (!File.Exists(file))
            throw new UserInputException($"{file}: not found; pass a model folder with tokenizer.json, a tokenizer.json file or a .gguf file");
        string folder = Path.GetDirectoryName(Path.GetFullPath(file))!;
        JsonObject root;
        try { root = JsonNode.Parse(File.ReadAllText(file)) as JsonObject ?? throw new UserInputException($"{file}: expected a JSON object"); }
        catch (JsonException e) { throw new UserInputException($"{file}: not valid JSON ({e.Message})"); }
        return FromJson(root, ReadJson(Path.Combine(folder, "tokenizer_config.json")), ReadJson(Path.Combine(folder, "generation_config.json")),
            ReadJson(Path.Combine(folder, "config.json")), file);
    }

    /// <summary>The tokenizer from the parsed files (the GGUF path builds them in memory); <paramref name="source"/>
    /// names the tokenizer in messages.</summary>
    public static LlamaTokenizer FromJson(JsonObject root, JsonObject? tokConfig, JsonObject? genConfig, JsonObject? modelConfig, string source)
    {
        string file = source;

        var model = root["model"] as JsonObject ?? throw new UserInputException($"{file}: missing 'model'");
        string type = model["type"]?.GetValue<string>() ?? "BPE";
        if (type != "BPE")
            throw new UserInputException($"{file}: tokenizer model type '{type}' is not supported (Llama tokenizers are BPE)");

        var vocab = (model["vocab"] as JsonObject ?? throw new UserInputException($"{file}: missing model.vocab"))
            .ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<int>());
        var merges = ReadMerges(model["merges"] as JsonArray, file);
        var added = new Dictionary<string, int>();
        foreach (var t in root["added_tokens"] as JsonArray ?? [])
            added[t!["content"]!.GetValue<string>()] = t["id"]!.GetValue<int>();


        int? IdOf(JsonNode? token) => token switch
        {
            JsonValue v when v.TryGetValue(out string? s) && s != null => added.TryGetValue(s, out int i) ? i : vocab.TryGetValue(s, out int j) ? j : null,
            JsonObject o => IdOf(o["content"]),
            _ => null,
        };

        int? bos = IdOf(tokConfig?["bos_token"]) ?? Int(modelConfig?["bos_token_id"]);
        var eos = new List<int>();
        if (IdOf(tokConfig?["eos_token"]) is int eosId) eos.Add(eosId);
        foreach (var id in Ints(genConfig?["eos_token_id"]).Concat(Ints(modelConfig?["eos_token_id"])))
            if (!eos.Contains(id)) eos.Add(id);
        bool addBos = tokConfig?["add_bos_token"]?.GetValue<bool>() ?? PostProcessorAddsBos(root["post_processor"]);
        int vocabSize = Math.Max(vocab.Values.DefaultIfEmpty(-1).Max(), added.Values.DefaultIfEmpty(-1).Max()) + 1;

        bool byteLevel = Mentions(root["pre_tokenizer"], "ByteLevel") || Mentions(root["decoder"], "ByteLevel");
        bool byteFallback = model["byte_fallback"]?.GetValue<bool>() ?? false;
        Tokenizer inner;
        if (byteLevel)
        {
            string pattern = FindSplitPattern(root["pre_tokenizer"]) ?? Gpt2Pattern;
            inner = BpeTokenizer.Create(new BpeOptions(vocab)
            {
                Merges = merges.Select(m => m.Left + " " + m.Right),
                ByteLevel = true,
                PreTokenizer = new RegexPreTokenizer(new Regex(pattern, RegexOptions.Compiled), added),
                SpecialTokens = added,
            });
        }
        else if (byteFallback)
        {
            inner = SentencePieceFromHf(vocab, merges, added, bos ?? 1, eos.FirstOrDefault(2), file);
        }
        else
        {
            throw new UserInputException($"{file}: a BPE tokenizer that is neither byte-level nor byte-fallback is not supported");
        }
        return new LlamaTokenizer(inner, vocabSize, added, bos, eos, addBos,
            Int(genConfig?["pad_token_id"]) ?? Int(modelConfig?["pad_token_id"]),
            encodeSegmentsBetweenSpecialTokens: !byteLevel);
    }

    /// <summary>A SentencePiece BPE model from an HF vocabulary: a piece's score is minus the rank of the first merge
    /// that makes it, so SentencePiece's "highest-scoring piece first" equals HF's "lowest-ranked merge first".</summary>
    private static Tokenizer SentencePieceFromHf(Dictionary<string, int> vocab, List<(string Left, string Right)> merges,
        Dictionary<string, int> added, int bos, int eos, string file)
    {
        var rank = new Dictionary<string, int>();
        for (int r = 0; r < merges.Count; r++)
            rank.TryAdd(merges[r].Left + merges[r].Right, r);
        var byId = new string[vocab.Values.Max() + 1];
        foreach (var (piece, id) in vocab) byId[id] = piece;
        int unk = vocab.TryGetValue("<unk>", out int u) ? u : 0;
        var pieces = new List<SentencePieceModelWriter.Piece>();
        for (int id = 0; id < byId.Length; id++)
        {
            string piece = byId[id] ?? throw new UserInputException($"{file}: vocabulary has no token with id {id}");
            SentencePieceModelWriter.PieceType kind =
                id == unk ? SentencePieceModelWriter.PieceType.Unknown
                : added.ContainsKey(piece) ? SentencePieceModelWriter.PieceType.Control
                : IsByteToken(piece) ? SentencePieceModelWriter.PieceType.Byte
                : rank.ContainsKey(piece) || piece.EnumerateRunes().Count() == 1 ? SentencePieceModelWriter.PieceType.Normal
                : SentencePieceModelWriter.PieceType.Unused; // unreachable by any merge in HF, so never produced
            float score = rank.TryGetValue(piece, out int r) ? -r - 1 : 0f;
            pieces.Add(new(piece, score, kind));
        }
        byte[] proto = SentencePieceModelWriter.Write(pieces, unk, bos, eos, addDummyPrefix: true);
        return SentencePieceTokenizer.Create(new MemoryStream(proto), false, false, added);
    }

    internal static bool IsByteToken(string piece) =>
        piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) && piece.EndsWith('>');

    private static List<(string Left, string Right)> ReadMerges(JsonArray? merges, string file)
    {
        var result = new List<(string, string)>();
        foreach (var m in merges ?? [])
        {
            switch (m)
            {
                case JsonValue v:
                    string s = v.GetValue<string>();
                    int space = s.IndexOf(' ', 1);
                    if (space < 0) throw new UserInputException($"{file}: merge '{s}' is not of the form 'left right'");
                    result.Add((s[..space], s[(space + 1)..]));
                    break;
                case JsonArray a when a.Count == 2:
                    result.Add((a[0]!.GetValue<string>(), a[1]!.GetValue<string>()));
                    break;
                default:
                    throw new UserInputException($"{file}: unexpected merge entry {m?.ToJsonString()}");
            }
        }
        return result;
    }

    private static bool PostProcessorAddsBos(JsonNode? post) => post switch
    {
        JsonObject o when o["single"] is JsonArray single => single.Count > 0 && single[0]?["SpecialToken"] != null,
        JsonObject o when o["processors"] is JsonArray list => list.Any(PostProcessorAddsBos),
        _ => false,
    };

    private static string? FindSplitPattern(JsonNode? pre) => pre switch
    {
        JsonObject o when o["type"]?.GetValue<string>() == "Split" => o["pattern"]?["Regex"]?.GetValue<string>(),
        JsonObject o when o["pretokenizers"] is JsonArray list => list.Select(FindSplitPattern).FirstOrDefault(p => p != null),
        _ => null,
    };

    private static bool Mentions(JsonNode? node, string type) => node switch
    {
        JsonObject o => o["type"]?.GetValue<string>() == type || o.Any(kv => Mentions(kv.Value, type)),
        JsonArray a => a.Any(n => Mentions(n, type)),
        _ => false,
    };

    private static JsonObject? ReadJson(string path)
    {
        if (!File.Exists(path)) return null;
        try { return JsonNode.Parse(File.ReadAllText(path)) as JsonObject; }
        catch (JsonException e) { throw new UserInputException($"{path}: not valid JSON ({e.Message})"); }
    }

    private static int? Int(JsonNode? n) => n is JsonValue v && v.TryGetValue(out int i) ? i : null;

    private static IEnumerable<int> Ints(JsonNode? n) => n switch
    {
        JsonArray a => a.Select(x => x!.GetValue<int>()),
        JsonValue v when v.TryGetValue(out int i) => [i],
        _ => [],
    };
}
