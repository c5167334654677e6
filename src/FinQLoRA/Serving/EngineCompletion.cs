using System.Text;
using System.Threading.Channels;
using FinQLoRA.Inference;

namespace FinQLoRA.Serving;

/// <summary>A whole request's output, gathered from its events (for non-streaming answers).</summary>
public sealed record EngineCompletion(string Text, IReadOnlyList<int> TokenIds, IReadOnlyList<TokenLogprob> Logprobs,
    IReadOnlyList<IReadOnlyList<TokenLogprob>> TopLogprobs, FinishReason FinishReason, int PromptTokens, int CompletionTokens)
{
    /// <summary>Prompt tokens read from the prefix cache.</summary>
    public int CachedTokens { get; init; }
    /// <summary>A scoring row's log-likelihood (<see cref="EngineRequest.ScoreFrom"/>); null for generation.</summary>
    public double? Score { get; init; }
    /// <summary>A scoring row's log-likelihood of each of its <see cref="EngineRequest.ScoreBranches"/> after its prompt.</summary>
    public IReadOnlyList<double>? BranchScores { get; init; }

    /// <summary>Reads events until the final one. Throws <see cref="OperationCanceledException"/> when the stream ends
    /// without one (the request was cancelled or the server stopped).</summary>
    public static async Task<EngineCompletion> ReadAsync(ChannelReader<EngineEvent> events, CancellationToken cancellation = default)
    {
        var text = new StringBuilder();
        var ids = new List<int>();
        var logprobs = new List<TokenLogprob>();
        var top = new List<IReadOnlyList<TokenLogprob>>();
        await foreach (var e in events.ReadAllAsync(cancellation).ConfigureAwait(false))
        {
            text.Append(e.TextDelta);
            if (e.TokenId is { } id) ids.Add(id);
            if (e.Logprob is { } lp)
            {
                logprobs.Add(lp);
                top.Add(e.TopLogprobs ?? []);
            }
            if (e.IsFinal)
                return new EngineCompletion(text.ToString(), ids, logprobs, top, e.FinishReason!, e.PromptTokens, e.CompletionTokens)
                    { CachedTokens = e.CachedTokens, Score = e.Score, BranchScores = e.BranchScores };
        }
        throw new OperationCanceledException("the request ended before it finished (cancelled or the server stopped)");
    }
}
