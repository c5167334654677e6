using FinQLoRA.Data.Tokenization;

namespace FinQLoRA.Inference;

/// <summary>
/// The per-sequence bookkeeping of one generated batch of <see cref="TextGenerator"/>, which stops for the serving
/// engine's reasons (<see cref="FinishReason"/>): a stop id (EOS or
/// <see cref="GenerationOptions.StopIds"/>), a stop string (text cut before it), or
/// <see cref="GenerationOptions.MaxNewTokens"/>. Each row's text is an <see cref="IncrementalText"/> anchored on its
/// prompt, the serving engine's rule, so that prompt + text reads as the whole decoded sequence.
/// </summary>
internal sealed class GenerationProgress
{
    private readonly int[][] _prompts;
    private readonly GenerationOptions _options;
    private readonly ITextTokenizer _tokenizer;
    private readonly HashSet<int> _stopIds;
    private readonly List<int>[] _generated;
    private readonly IncrementalText[] _texts;
    private readonly FinishReason?[] _finish;

    public GenerationProgress(int[][] prompts, GenerationOptions options, ITextTokenizer tokenizer)
    {
        _prompts = prompts;
        _options = options;
        _tokenizer = tokenizer;
        _stopIds = tokenizer.EosIds.Concat(options.StopIds).ToHashSet();
        _generated = prompts.Select(_ => new List<int>()).ToArray();
        _texts = prompts.Select(p => new IncrementalText(tokenizer, options.StopStrings, p.Length > 0 ? p[^1] : null)).ToArray();
        _finish = new FinishReason?[prompts.Length];
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
            if (_stopIds.Contains(token)) { _finish[r] = FinishReason.AtToken(token); continue; }
            _generated[r].Add(token);
            _texts[r].Append(token);
            if (_texts[r].StopString is { } stop) _finish[r] = FinishReason.AtString(stop);
        }
        Steps++;
    }

    /// <summary>The ids to feed for the next step: the chosen ones, and padding for rows that stopped (their
    /// outputs are ignored).</summary>
    public long[] NextFeed(long[] chosen) =>
        chosen.Select((t, r) => _finish[r] != null ? _tokenizer.PadId : t).ToArray();

    public GenerationResult[] Results() =>
        Enumerable.Range(0, _prompts.Length).Select(r => new GenerationResult(
            _prompts[r], _generated[r].ToArray(), _texts[r].Text, _finish[r] ?? FinishReason.Length)).ToArray();
}
