using FinQLoRA.Data.Tokenization;

namespace FinQLoRA.Demo;

/// <summary>
/// A tokenizer restricted to the tokens a closed corpus uses (vocabulary trimming): text is encoded with the full
/// tokenizer, then each id is renumbered densely. The demo's generated task uses a few hundred of GPT-2's 50,257
/// tokens, so the output layer shrinks ~150x and the demo trains in a fraction of the time. Id 0 is the
/// end-of-text token (BOS/EOS/padding), id 1 stands for any token the corpus did not contain.
/// </summary>
public sealed class TrimmedTokenizer : ITextTokenizer
{
    private readonly ITextTokenizer _inner;
    private readonly Dictionary<int, int> _toTrimmed = new();
    private readonly List<int> _toInner = new();
    private const int Unknown = 1;

    public TrimmedTokenizer(ITextTokenizer inner, IEnumerable<string> corpus)
    {
        _inner = inner;
        Add(inner.BosId ?? inner.EosIds[0]); // 0: end of text
        _toInner.Add(-1);                    // 1: unknown
        foreach (string text in corpus)
            foreach (int id in inner.Encode(text, addBos: false))
                Add(id);
    }

    private void Add(int innerId)
    {
        if (_toTrimmed.ContainsKey(innerId)) return;
        _toTrimmed[innerId] = _toInner.Count;
        _toInner.Add(innerId);
    }

    public int VocabSize => _toInner.Count;
    public int? BosId => 0;
    public IReadOnlyList<int> EosIds => [0];
    public int PadId => 0;
    public bool AddsBosByDefault => true;

    public int[] Encode(string text, bool addBos)
    {
        var ids = _inner.Encode(text, addBos: false).Select(i => _toTrimmed.GetValueOrDefault(i, Unknown));
        return (addBos ? ids.Prepend(0) : ids).ToArray();
    }

    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true) =>
        _inner.Decode(ids.Where(i => i > 1 && i < _toInner.Count).Select(i => _toInner[i]), skipSpecialTokens);

    public int? TokenToId(string token) => _inner.TokenToId(token) is int id && _toTrimmed.TryGetValue(id, out int t) ? t : null;
}
