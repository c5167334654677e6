namespace FinQLoRA.Serving;

/// <summary>One sequence to generate (or to score, with <see cref="ScoreFrom"/>): its prompt ids, the adapter (null =
/// the base) and how to decode. Cancelling <see cref="Cancellation"/> (a client that went away) takes the row out of
/// the batch at the next step.</summary>
public sealed record EngineRequest(int[] PromptIds, string? Adapter, SamplingParams Sampling, CancellationToken Cancellation = default)
{
    /// <summary>The prefix-cache partition: blocks are shared only between requests of the same partition (null: the
    /// shared one). The server derives it from <c>prompt_cache_key</c> and the caller's API key.</summary>
    public string? CachePartition { get; init; }

    /// <summary>vLLM's request priority: under <see cref="SchedulingPolicy.Priority"/> a lower value is admitted from
    /// the waiting queue earlier (ties by arrival); under <see cref="SchedulingPolicy.Fcfs"/> it must be 0.</summary>
    public int Priority { get; init; }

    /// <summary>Makes this a scoring row: nothing is generated, and the one (final) event carries
    /// <see cref="EngineEvent.Score"/> = Σ log p(PromptIds[i] | PromptIds[..i]) for i in [ScoreFrom, PromptIds.Length)
    /// (natural log). <c>ScoreFrom == PromptIds.Length</c> only prefills the prompt into the prefix cache (score 0).
    /// <see cref="Sampling"/> is ignored.</summary>
    public int? ScoreFrom { get; init; }

    /// <summary>With <see cref="ScoreFrom"/> = the prompt's length: continuations of the whole prompt, each scored by
    /// its log-likelihood (<see cref="EngineEvent.BranchScores"/>, in this order) in the same forward as the prompt.
    /// Their tokens are fed side by side after it, each branch at the positions that follow the prompt and seeing the
    /// prompt and its own earlier tokens only (a tree mask), so n options of a question cost one row, not n.</summary>
    public IReadOnlyList<int[]> ScoreBranches { get; init; } = [];

    /// <summary>Branch tokens fed after the prompt (each branch's last token is only predicted).</summary>
    internal int BranchTokens => ScoreBranches.Sum(b => b.Length - 1);

    /// <summary>Where the blocks this row may put in the prefix cache end: the prompt, or for a scoring row what comes
    /// before the scored tokens.</summary>
    internal int CacheableEnd => ScoreFrom ?? PromptIds.Length;

    /// <summary>vLLM's refusal of a priority on a server that schedules first come, first served.</summary>
    public static string PriorityNeedsPolicy(long priority) =>
        $"got priority {priority} but priority scheduling is not enabled (start the server with --scheduling-policy priority, or send priority 0)";

    /// <summary>Refuses a request the engine cannot run (OpenAI's ranges; prompt plus completion within
    /// <paramref name="maxModelLen"/>), naming the field at fault.</summary>
    internal void Check(int vocabSize, int maxModelLen, SchedulingPolicy policy = SchedulingPolicy.Fcfs)
    {
        var s = Sampling;
        if (Priority != 0 && policy == SchedulingPolicy.Fcfs)
            throw new ServingException(ServingErrorKind.InvalidRequest, PriorityNeedsPolicy(Priority), "priority");
        if (ScoreBranches.Count > 0 && ScoreFrom != PromptIds.Length)
            throw new ServingException(ServingErrorKind.InvalidRequest, "branches continue the whole prompt: set ScoreFrom to the prompt's length", "prompt");
        if (PromptIds.Length == 0) throw new ServingException(ServingErrorKind.InvalidRequest, "the prompt is empty after tokenization", "prompt");
        if (PromptIds.Any(id => id < 0 || id >= vocabSize))
            throw new ServingException(ServingErrorKind.InvalidRequest, $"prompt token ids must be in [0, {vocabSize})", "prompt");
        if (ScoreFrom is int from)
        {
            // the first token has no context to be scored by, and a scoring row computes every position it scores
            if (from < 1 || from > PromptIds.Length)
                throw new ServingException(ServingErrorKind.InvalidRequest, $"the scored tokens must start in [1, {PromptIds.Length}] (got {from})", "prompt");
            if (ScoreBranches.Any(b => b.Length == 0 || b.Any(id => id < 0 || id >= vocabSize)))
                throw new ServingException(ServingErrorKind.InvalidRequest, $"every branch needs tokens, with ids in [0, {vocabSize})", "prompt");
            if (PromptIds.Length + BranchTokens > maxModelLen)
                throw new ServingException(ServingErrorKind.ContextLength,
                    $"This model's maximum context length is {maxModelLen} tokens. However, you requested {PromptIds.Length + BranchTokens} tokens. Please reduce the input.", "input");
            return;
        }
        if (s.MaxTokens < 1) throw new ServingException(ServingErrorKind.InvalidRequest, $"max_tokens must be at least 1 (got {s.MaxTokens})", "max_tokens");
        if (s.Temperature is < 0 or > 2 || double.IsNaN(s.Temperature)) throw new ServingException(ServingErrorKind.InvalidRequest, $"temperature must be in [0, 2] (got {s.Temperature})", "temperature");
        if (s.TopP is <= 0 or > 1 || double.IsNaN(s.TopP)) throw new ServingException(ServingErrorKind.InvalidRequest, $"top_p must be in (0, 1] (got {s.TopP})", "top_p");
        if (s.TopK < 0) throw new ServingException(ServingErrorKind.InvalidRequest, $"top_k must be >= 0 (got {s.TopK})", "top_k");
        if (s.Logprobs is < 0 or > 20) throw new ServingException(ServingErrorKind.InvalidRequest, $"logprobs must be in [0, 20] (got {s.Logprobs})", "logprobs");
        if (PromptIds.Length + s.MaxTokens > maxModelLen)
            throw new ServingException(ServingErrorKind.ContextLength,
                $"This model's maximum context length is {maxModelLen} tokens. However, you requested {PromptIds.Length + s.MaxTokens} tokens ({PromptIds.Length} in the prompt, {s.MaxTokens} for the completion). Please reduce the prompt or max_tokens.", "max_tokens");
    }
}
