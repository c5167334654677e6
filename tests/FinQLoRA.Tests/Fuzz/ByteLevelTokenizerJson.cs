using System.Text.Json.Nodes;

namespace FinQLoRA.Tests.Fuzz;

/// <summary>
/// The smallest real tokenizer.json: GPT-2's byte-level BPE over the 256 byte tokens with no merges, plus one
/// end-of-text token. Any text encodes (one token per byte), so a random model of vocabulary 257 can be loaded and
/// run by the CLI with no downloaded tokenizer.
/// </summary>
internal static class ByteLevelTokenizerJson
{
    public const int VocabSize = 257;

    public static string Create()
    {
        var vocab = new JsonObject();
        foreach (var (b, c) in ByteToUnicode()) vocab[c.ToString()] = b;
        var root = new JsonObject
        {
            ["model"] = new JsonObject { ["type"] = "BPE", ["vocab"] = vocab, ["merges"] = new JsonArray() },
            ["pre_tokenizer"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["use_regex"] = true },
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel" },
            ["added_tokens"] = new JsonArray(new JsonObject { ["id"] = 256, ["content"] = "<|end|>", ["special"] = true }),
        };
        return root.ToJsonString();
    }

    /// <summary>GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to 256 + n.</summary>
    private static IEnumerable<(int Byte, char Char)> ByteToUnicode()
    {
        var printable = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range('¡', '¬' - '¡' + 1)).Concat(Enumerable.Range('®', 'ÿ' - '®' + 1)).ToHashSet();
        int n = 0;
        for (int b = 0; b < 256; b++)
            yield return (b, printable.Contains(b) ? (char)b : (char)(256 + n++));
    }
}
