using FinQLoRA.Data.Chat;
using FinQLoRA.Evaluation;

namespace FinQLoRA.Serving.Decisions;

/// <summary>
/// Answers decision requests on the serving engine with scoring rows of the continuous batch (they run beside other
/// requests and adapters). An option's log-likelihood is its label's, after the question's prompt, split as
/// <c>eval --mode choice</c> splits them (<see cref="ChoiceScorer.Continuation"/>). Two waves, the second finding the
/// first in the prefix cache, so that no prompt token is computed twice:
/// <list type="number">
/// <item>the prefix every question's prompt shares (the input) is prefilled once, as a prefill-only row;</item>
/// <item>each question's prompt is one row whose branches are its options' labels, multi-token ones included, scored
/// side by side in that row's forward (<see cref="EngineRequest.ScoreBranches"/>).</item>
/// </list>
/// At most one batch of rows is in flight per request, so a request with hundreds of questions does not fill the queue.
/// </summary>
public sealed class EngineDecisions(ServingEngine engine, ChatFormat? format)
{
    /// <exception cref="UserInputException">the chat template refuses the input conversation</exception>
    /// <exception cref="ServingException">the engine refuses the work (unknown adapter, queue full, stopping)</exception>
    public async Task<DecisionResult> DecideAsync(DecisionRequest request, CancellationToken cancellation = default)
    {
        var plans = request.Questions.Select(q => QuestionPlan.Of(q, DecisionPrompt.Context(format, request.Input, q), engine, format)).ToList();
        var answered = plans.Where(p => p.Fits).ToList();
        int shared = answered.Count == 0 ? 0 : CommonPrefix(answered.Select(p => p.PromptIds).ToList());
        int inputTokens = shared + plans.Sum(p => p.PromptIds.Length - Math.Min(shared, p.PromptIds.Length) + p.LabelTokens);

        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        try
        {
            int? cached = null;
            if (answered.Count > 1 && engine.Options.PrefixCacheBytes > 0 && shared > 0)
                cached = (await RunAllAsync([Row(answered[0].PromptIds[..shared], shared, [], request)], cancel.Token).ConfigureAwait(false))[0].CachedTokens;
            var rows = answered.Select(p => Row(p.PromptIds, p.PromptIds.Length, p.Branches, request))
                .Concat(answered.SelectMany(p => p.OwnRows).Select(r => Row(r.InputIds, r.PromptLength, [], request))).ToList();
            var scored = await RunAllAsync(rows, cancel.Token).ConfigureAwait(false);

            var answers = new List<DecisionAnswer>();
            int next = answered.Count; // own rows follow the question rows
            for (int i = 0, a = 0; i < plans.Count; i++)
            {
                var plan = plans[i];
                if (!plan.Fits)
                {
                    answers.Add(new RefusalAnswer(plan.Question.Name));
                    continue;
                }
                var branchScores = scored[a++].BranchScores ?? [];
                int ownStart = next;
                var ll = plan.Options.Select(o => o.Branch >= 0 ? branchScores[o.Branch] : scored[ownStart + o.OwnRow].Score!.Value).ToList();
                next += plan.OwnRows.Count;
                answers.Add(DecisionAnswer.From(plan.Question, ll));
            }
            return new DecisionResult(answers, inputTokens, Math.Min(cached ?? scored.FirstOrDefault()?.CachedTokens ?? 0, shared));
        }
        catch
        {
            cancel.Cancel(); // rows already queued leave at the next step
            throw;
        }
    }

    private static EngineRequest Row(int[] ids, int scoreFrom, int[][] branches, DecisionRequest request) =>
        new(ids, request.Adapter, new SamplingParams()) { ScoreFrom = scoreFrom, ScoreBranches = branches, CachePartition = request.CachePartition, Priority = request.Priority };

    /// <summary>Runs the rows with at most one batch in flight; completions in the rows' order.</summary>
    private async Task<EngineCompletion[]> RunAllAsync(IReadOnlyList<EngineRequest> rows, CancellationToken cancellation)
    {
        using var inFlight = new SemaphoreSlim(engine.Options.MaxBatch);
        return await Task.WhenAll(rows.Select(async row =>
        {
            await inFlight.WaitAsync(cancellation).ConfigureAwait(false);
            try
            {
                return await EngineCompletion.ReadAsync(engine.Submit(row with { Cancellation = cancellation }), cancellation).ConfigureAwait(false);
            }
            finally { inFlight.Release(); }
        })).ConfigureAwait(false);
    }

    private static int CommonPrefix(IReadOnlyList<int[]> rows)
    {
        int n = rows.Min(r => r.Length);
        for (int i = 0; i < n; i++)
            foreach (var r in rows)
                if (r[i] != rows[0][i]) return i;
        return n;
    }
}
