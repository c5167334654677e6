using System.Diagnostics;
using System.Threading.Channels;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Inference;
using FinQLoRA.Inference.Constraints;
using static TorchSharp.torch;

namespace FinQLoRA.Serving;

/// <summary>One request while it waits or runs: its slot, how far its cache is filled, its own sampler (and RNG),
/// its text so far and the channel its events go to.</summary>
internal sealed class EngineRow : IDisposable
{
    private readonly HashSet<int> _stopIds;
    private readonly IncrementalText _text;
    private long _lastTokenAt;

    public EngineRow(EngineRequest request, ITextTokenizer tokenizer, Device device)
    {
        Request = request;
        _stopIds = tokenizer.EosIds.Concat(request.Sampling.StopTokenIds).ToHashSet();
        _text = new IncrementalText(tokenizer, request.Sampling.Stop, request.PromptIds.Length > 0 ? request.PromptIds[^1] : null);
        var s = request.Sampling;
        Greedy = s.Temperature <= 0;
        if (!Greedy)
            Sampler = new TokenSampler(s, device);
        ConstraintState = request.Sampling.Constraint?.Start ?? 0;
        Channel = System.Threading.Channels.Channel.CreateUnbounded<EngineEvent>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        SubmittedAt = Stopwatch.GetTimestamp();
    }

    public EngineRequest Request { get; }
    public Channel<EngineEvent> Channel { get; }
    public TokenSampler? Sampler { get; }
    public bool Greedy { get; }
    public long SubmittedAt { get; }
    /// <summary>The row's place in arrival order, given by the waiting queue (ties between equal priorities).</summary>
    public long Arrival { get; set; }
    public int Slot { get; set; } = -1;
    /// <summary>Admitted, so its adapter counts it and may not leave the device (scheduler thread).</summary>
    public bool HoldsAdapter { get; set; }
    /// <summary>Positions of this row held in the KV cache.</summary>
    public int Length { get; set; }
    /// <summary>Prompt positions copied from the prefix cache into the slot (the prefill computes the rest).</summary>
    public int CachedTokens { get; set; }
    /// <summary>The prefix-cache keys of the prompt's full blocks that may be cached (<see cref="EngineRequest.CacheableEnd"/>),
    /// made at the first admission.</summary>
    public PrefixCaching.PrefixBlockKey[]? PrefixKeys { get; set; }
    /// <summary>A scoring row's sum so far of its scored tokens' log probabilities.</summary>
    public double Score { get; set; }
    /// <summary>A scoring row's log-likelihood of each of its <see cref="EngineRequest.ScoreBranches"/>, once computed.</summary>
    public double[]? BranchScores { get; set; }
    public bool IsScoring => Request.ScoreFrom is not null;
    /// <summary>The last sampled token, fed at the next decode step.</summary>
    public int LastToken { get; private set; }
    public int Generated { get; private set; }
    public bool Finished { get; private set; }
    /// <summary>The request's structured-output constraint, or null.</summary>
    public CompiledConstraint? Constraint => Request.Sampling.Constraint;
    /// <summary>Where the text so far stands in <see cref="Constraint"/>'s automaton.</summary>
    public int ConstraintState { get; private set; }

    /// <summary>Takes the sampled token; returns the event to send (final when the row is done).</summary>
    public EngineEvent Accept(int token, TokenLogprob? logprob, IReadOnlyList<TokenLogprob>? top, IEngineObserver? observer)
    {
        Generated++;
        LastToken = token;
        long now = Stopwatch.GetTimestamp();
        if (Generated == 1) observer?.FirstToken(Request.Adapter, Stopwatch.GetElapsedTime(SubmittedAt, now));
        else observer?.NextToken(Request.Adapter, Stopwatch.GetElapsedTime(_lastTokenAt, now));
        _lastTokenAt = now;

        FinishReason? finish = null;
        string delta;
        if (_stopIds.Contains(token))
        {
            // The end-of-sequence token is counted (it was generated) but is not part of the text.
            finish = FinishReason.AtToken(token);
            logprob = null;
            top = null;
            delta = _text.Flush();
        }
        else
        {
            delta = _text.Add(token);
            if (Constraint is { } constraint) ConstraintState = constraint.Advance(ConstraintState, token);
            if (_text.StopString is { } stop) finish = FinishReason.AtString(stop);
            else if (Constraint?.IsComplete(ConstraintState) == true)
            {
                finish = FinishReason.Complete; // the value is whole and nothing may follow: no EOS to wait for
                delta += _text.Flush();
            }
            else if (Generated >= Request.Sampling.MaxTokens)
            {
                finish = FinishReason.Length;
                delta += _text.Flush();
            }
        }
        if (finish is not null)
        {
            Finished = true;
            Report(observer, Request.PromptIds.Length, Generated);
        }
        return new EngineEvent(finish?.StopToken is null ? token : null, logprob, top, delta, finish, Request.PromptIds.Length, Generated);
    }

    /// <summary>Reports the finished request: its tokens and its latency from submission (vLLM's e2e latency).</summary>
    public void Report(IEngineObserver? observer, int promptTokens, int completionTokens)
    {
        if (observer is null) return;
        observer.Finished(Request.Adapter, promptTokens, completionTokens);
        observer.RequestLatency(Request.Adapter, Stopwatch.GetElapsedTime(SubmittedAt));
    }

    /// <summary>How long the row has waited since it was submitted (at admission: vLLM's queue time).</summary>
    public TimeSpan SinceSubmit => Stopwatch.GetElapsedTime(SubmittedAt);

    /// <summary>Ends a scoring row after its prefill: its one event carries the score.</summary>
    public EngineEvent Scored()
    {
        Finished = true;
        return new EngineEvent(null, null, null, "", FinishReason.Scored, Request.PromptIds.Length) { CachedTokens = CachedTokens, Score = Score, BranchScores = BranchScores };
    }

    /// <summary>Ends the row with <paramref name="error"/> on its stream (the scheduler's later close is a no-op).</summary>
    public void Fail(Exception error)
    {
        Finished = true;
        Channel.Writer.TryComplete(error);
    }

    public void Dispose() => Sampler?.Dispose();
}
