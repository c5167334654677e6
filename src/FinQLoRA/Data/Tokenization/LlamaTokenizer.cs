using Microsoft.ML.Tokenizers;

namespace FinQLoRA.Data.Tokenization;

/// <summary>
/// A Microsoft.ML.Tokenizers tokenizer (byte-level BPE for Llama 3, SentencePiece BPE with byte fallback for
/// Llama 2 style vocabularies) plus the model's special ids. BOS is added here, never by the inner tokenizer,
/// so that "add BOS" means the same for every format and chat prompts never get two.
/// </summary>
public sealed class LlamaTokenizer : ITextTokenizer
{
    private readonly Tokenizer _inner;
    private readonly IReadOnlyDictionary<string, int> _special;
    private readonly HashSet<int> _specialIds;
    private readonly bool _segmented;
    private readonly System.Text.RegularExpressions.Regex? _specialPattern;

    public LlamaTokenizer(Tokenizer inner, int vocabSize, IReadOnlyDictionary<string, int> specialTokens,
        int? bosId, IReadOnlyList<int> eosIds, bool addsBosByDefault, int? padId = null, bool encodeSegmentsBetweenSpecialTokens = false)
    {
        _segmented = encodeSegmentsBetweenSpecialTokens && specialTokens.Count > 0;
        _specialPattern = _segmented
            ? new System.Text.RegularExpressions.Regex(string.Join("|", specialTokens.Keys.OrderByDescending(k => k.Length).Select(System.Text.RegularExpressions.Regex.Escape)))
            : null;
        _inner = inner;
        _special = specialTokens;
        _specialIds = specialTokens.Values.ToHashSet();
        VocabSize = vocabSize;
        BosId = bosId;
        EosIds = eosIds;
        AddsBosByDefault = addsBosByDefault;
        PadId = padId ?? (eosIds.Count > 0 ? eosIds[0] : 0);
    }

    public int VocabSize { get; }
    public int? BosId { get; }
    public IReadOnlyList<int> EosIds { get; }
    public int PadId { get; }
    public bool AddsBosByDefault { get; }
    public Tokenizer Inner => _inner;
    /// <summary>The added tokens' ids (BOS, EOS, chat markers …): control tokens, never text.</summary>
    public IReadOnlyCollection<int> SpecialIds => _specialIds;
    /// <summary>The added tokens by their text (<c>&lt;|eot_id|&gt;</c> → id).</summary>
    public IReadOnlyDictionary<string, int> SpecialTokens => _special;

    public int[] Encode(string text, bool addBos)
    {
        var ids = _segmented ? EncodeSegments(text) : _inner.EncodeToIds(text);
        if (!addBos || BosId is not int bos) return ids.ToArray();
        var result = new int[ids.Count + 1];
        result[0] = bos;
        for (int i = 0; i < ids.Count; i++) result[i + 1] = ids[i];
        return result;
    }

    /// <summary>Hugging Face's legacy SentencePiece behaviour: special tokens written in the text are cut out first
    /// and each piece of text between them is encoded on its own, so each gets the "▁" dummy prefix.</summary>
    private List<int> EncodeSegments(string text)
    {
        var ids = new List<int>();
        int start = 0;
        foreach (System.Text.RegularExpressions.Match m in _specialPattern!.Matches(text))
        {
            if (m.Index > start) ids.AddRange(_inner.EncodeToIds(text[start..m.Index]));
            ids.Add(_special[m.Value]);
            start = m.Index + m.Length;
        }
        if (start < text.Length) ids.AddRange(_inner.EncodeToIds(text[start..]));
        return ids;
    }

    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true) =>
        _inner.Decode(skipSpecialTokens ? ids.Where(i => !_specialIds.Contains(i)) : ids) ?? "";

    public int? TokenToId(string token) =>
        _special.TryGetValue(token, out int id) ? id
        : _inner.EncodeToIds(token) is { Count: 1 } one ? one[0] : null;
}
