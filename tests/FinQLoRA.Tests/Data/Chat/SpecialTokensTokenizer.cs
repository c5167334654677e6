using FinQLoRA.Data.Tokenization;

namespace FinQLoRA.Tests.Data.Chat;

/// <summary>A tokenizer that knows only the given special tokens: what chat detection asks a tokenizer.</summary>
internal sealed class SpecialTokensTokenizer(Dictionary<string, int> specials) : ITextTokenizer
{
    /// <summary>The tokens numbered from 100.</summary>
    public static SpecialTokensTokenizer Numbered(IEnumerable<string> tokens) =>
        new(tokens.Select((t, i) => (t, i)).ToDictionary(x => x.t, x => 100 + x.i));

    public int VocabSize => 200;
    public int? BosId => null;
    public IReadOnlyList<int> EosIds => [0];
    public int PadId => 0;
    public bool AddsBosByDefault => false;
    public int[] Encode(string text, bool addBos) => [];
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true) => "";
    public int? TokenToId(string token) => specials.TryGetValue(token, out int id) ? id : null;
}
