using FinQLoRA.Data.Tokenization;

namespace FinQLoRA.Inference;

/// <summary>
/// The per-sequence bookkeeping of one generated batch, shared by <see cref="TextGenerator"/> and the pipeline
/// generator so that both stop for the same reasons: a stop id (EOS or <see cref="GenerationOptions.StopIds"/>),
/// a stop string (text cut before it), or <see cref="GenerationOptions.MaxNewTokens"/>.
/// </summary>
internal sealed class GenerationProgress
{
    private readonly int[][] _prompts;
    private readonly GenerationOptions _options;
    private readonly ITextTokenizer _tokenizer;
    private readonly HashSet<int> _stopIds;
    private readonly List<int>[] _generated;
    private readonly string?[] _finish;
    private readonly string?[] _texts;

    public GenerationProgress(int[][] prompts, GenerationOptions options, ITextTokenizer tokenizer)
    {
        _prompts = prompts;
        _options = options;
        _tokenizer = tokenizer;
        _stopIds = tokenizer.EosIds.Concat(options.StopIds).ToHashSet();
        _generated = prompts.Select(_ => new List<int>()).ToArray();
        _finish = new string?[prompts.Length];
        _texts = new string?[prompts.Length];
    }

    /// <summary>Number of steps recorded so far.</summary>
    public int Steps { get; private set; }

    /// <summary>Every sequence has stopped, or the step budget is spent: no further forward is needed.</summary>
    public bool Done => Steps >= _options.MaxNewTokens || _finish.All(f => f != null);

    /// <summary>Records one step's chosen token per row (rows that already stopped ignore theirs).</summary>
    public void Record(long[] chosen)
    {
        for (int r = 0; r < _prompts.Length; r++)
        {
            if (_finish[r] != null) continue;
            int token = (int)chosen[r];
            if (_stopIds.Contains(token)) { _finish[r] = "eos"; continue; }
            _generated[r].Add(token);
            if (_options.StopStrings.Count > 0 && CutAtStopString(_tokenizer.Decode(_generated[r])) is { } cut)
            {
                _texts[r] = cut;
                _finish[r] = "stop_string";
            }
        }
        Steps++;
    }

    /// <summary>The ids to feed for the next step: the chosen ones, and padding for rows that stopped (their
    /// outputs are ignored).</summary>
    public long[] NextFeed(long[] chosen) =>
        chosen.Select((t, r) => _finish[r] != null ? _tokenizer.PadId : t).ToArray();

    public GenerationResult[] Results() =>
        Enumerable.Range(0, _prompts.Length).Select(r => new GenerationResult(
            _prompts[r], _generated[r].ToArray(), _texts[r] ?? _tokenizer.Decode(_generated[r]), _finish[r] ?? "length")).ToArray();

    private string? CutAtStopString(string text)
    {
        int best = -1;
        foreach (string s in _options.StopStrings)
        {
            int at = text.IndexOf(s, StringComparison.Ordinal);
            if (at >= 0 && (best < 0 || at < best)) best = at;
        }
        return best >= 0 ? text[..best] : null;
    }
}
