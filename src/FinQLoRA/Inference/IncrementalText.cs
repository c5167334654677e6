using FinQLoRA.Data.Tokenization;

namespace FinQLoRA.Inference;

/// <summary>
/// Turns a growing list of generated ids into text deltas for streaming. The whole output is decoded each time (a
/// token can change how the bytes before it read), and a delta stops short of (1) a trailing incomplete character:
/// byte-fallback tokens carry UTF-8 one byte at a time and decode to U+FFFD until the character is complete, and a
/// lone high surrogate; (2) a tail that is the beginning of a stop string, which the next tokens may complete.
/// A stop string found anywhere in the text (it may span several tokens) ends the output just before it.
/// The text is the one that reads after the prompt (<see cref="After"/>): SentencePiece decoders drop the leading space
/// of the first token decoded, so the ids are decoded after the prompt's last token (the anchor).
/// The one text rule of the one generation loop, the serving engine (generate's and eval's texts, the streamed text, and each logprob token's text through <see cref="After"/>), so that prompt + text
/// reads as the whole decoded sequence everywhere.
/// </summary>
public sealed class IncrementalText
{
    private readonly ITextTokenizer tokenizer;
    private readonly IReadOnlyList<string> stops;
    private readonly List<int> _ids = [];
    private readonly int? _anchor;
    private int _emitted;
    private string _text = "";
    private bool _stale; // ids appended without decoding (Append, no stop strings to look for)

    /// <param name="anchor">the prompt's last token, or null to decode the output on its own</param>
    public IncrementalText(ITextTokenizer tokenizer, IReadOnlyList<string> stops, int? anchor = null)
    {
        this.tokenizer = tokenizer;
        this.stops = stops;
        if (anchor is { } a)
        {
            string text = tokenizer.Decode([a]);
            // A partial UTF-8 byte (or a special token, which decodes to nothing) cannot anchor the decoding.
            if (!text.Contains('\uFFFD') && text.Length > 0) _anchor = a;
        }
    }

    /// <summary>The text of <paramref name="ids"/> as it reads after <paramref name="anchor"/>: the two decoded together
    /// less the anchor's own text (the decoding of <paramref name="ids"/> alone where the anchor's text is not a prefix,
    /// as when the ids complete the anchor's partial UTF-8 character).</summary>
    public static string After(ITextTokenizer tokenizer, int anchor, IReadOnlyList<int> ids, bool skipSpecialTokens = true)
    {
        string before = tokenizer.Decode([anchor], skipSpecialTokens);
        string both = tokenizer.Decode([anchor, .. ids], skipSpecialTokens);
        return both.StartsWith(before, StringComparison.Ordinal) ? both[before.Length..] : tokenizer.Decode(ids, skipSpecialTokens);
    }

    /// <summary>Set once a stop string appeared; the text is cut before it and nothing more is emitted.</summary>
    public bool Stopped => StopString is not null;

    /// <summary>The stop string that appeared first in the text, once one did.</summary>
    public string? StopString { get; private set; }

    /// <summary>The output text so far (cut at a stop string once one appeared).</summary>
    public string Text
    {
        get
        {
            if (_stale) { _text = Decode(); _stale = false; }
            return _text;
        }
    }

    /// <summary>Adds one token where only the final <see cref="Text"/> is wanted (no deltas): the text is decoded now
    /// only when a stop string may end it, otherwise once when it is read.</summary>
    public void Append(int id)
    {
        if (Stopped) return;
        if (stops.All(s => s.Length == 0))
        {
            _ids.Add(id);
            _stale = true;
            return;
        }
        Add(id);
    }

    /// <summary>Adds one token and returns the text that became safe to show.</summary>
    public string Add(int id)
    {
        if (Stopped) return "";
        _ids.Add(id);
        _text = Decode();
        _stale = false;
        var (cut, stop) = FirstStop(_text);
        if (stop is not null)
        {
            StopString = stop;
            _text = _text[..cut];
            return TakeTo(_text.Length);
        }
        int safe = _text.Length;
        while (safe > _emitted && _text[safe - 1] == '\uFFFD') safe--;
        if (safe > _emitted && char.IsHighSurrogate(_text[safe - 1])) safe--;
        safe -= HeldForStop(_text, safe);
        return TakeTo(safe);
    }

    private string Decode() => _anchor is { } a ? After(tokenizer, a, _ids) : tokenizer.Decode(_ids);

    /// <summary>What is left to show when generation ends (the held-back tail, if it never became a stop string).</summary>
    public string Flush() => TakeTo(Text.Length);

    private string TakeTo(int end)
    {
        if (end <= _emitted) return "";
        // Decoding more ids can, rarely, rewrite text already shown (e.g. a merged character); never re-send it.
        string delta = _text[_emitted..end];
        _emitted = end;
        return delta;
    }

    /// <summary>Where the earliest stop string starts in text, and which one it is (the first listed on a tie).</summary>
    private (int At, string? Stop) FirstStop(string text)
    {
        int best = -1;
        string? found = null;
        foreach (string s in stops)
        {
            if (s.Length == 0) continue;
            int at = text.IndexOf(s, StringComparison.Ordinal);
            if (at >= 0 && (best < 0 || at < best)) (best, found) = (at, s);
        }
        return (best, found);
    }

    /// <summary>The length of the longest tail of text[..end] that is a proper prefix of a stop string.</summary>
    private int HeldForStop(string text, int end)
    {
        int hold = 0;
        foreach (string s in stops)
            for (int k = Math.Min(s.Length - 1, end - _emitted); k > hold; k--)
                if (string.CompareOrdinal(text, end - k, s, 0, k) == 0) { hold = k; break; }
        return hold;
    }
}
