using System.Runtime.CompilerServices;
using FinQLoRA.Data.Tokenization;
using Microsoft.ML.Tokenizers;

namespace FinQLoRA.Server.Tokenize;

/// <summary>Each id's entry in the vocabulary as the tokenizer file spells it (Hugging Face's
/// <c>convert_ids_to_tokens</c>, which vLLM's <c>token_strs</c> are): <c>Ġthe</c> for byte-level BPE, <c>▁the</c> and
/// <c>&lt;0x0A&gt;</c> for SentencePiece, added tokens by their text. Built once per tokenizer.</summary>
internal static class TokenStrings
{
    private static readonly ConditionalWeakTable<ITextTokenizer, string?[]> Tables = new();

    public static IReadOnlyList<string> Of(ITextTokenizer tokenizer, IReadOnlyList<int> ids)
    {
        var table = Tables.GetValue(tokenizer, Build);
        // an id the vocabulary files do not name (a padded embedding row) reads as the tokenizer decodes it
        return ids.Select(id => table[id] ?? tokenizer.Decode([id], skipSpecialTokens: false)).ToList();
    }

    private static string?[] Build(ITextTokenizer tokenizer)
    {
        var table = new string?[tokenizer.VocabSize];
        if (tokenizer is not FinQLoRA.Data.Tokenization.LlamaTokenizer llama) return table;
        IReadOnlyDictionary<string, int>? vocabulary = llama.Inner switch
        {
            BpeTokenizer bpe => bpe.Vocabulary,
            SentencePieceTokenizer sp => sp.Vocabulary,
            _ => null,
        };
        foreach (var (text, id) in (vocabulary ?? new Dictionary<string, int>()).Concat(llama.SpecialTokens))
            if (id >= 0 && id < table.Length) table[id] = text;
        return table;
    }
}
