using FinQLoRA.Data.Chat;
using FinQLoRA.Evaluation;

namespace FinQLoRA.Serving.Decisions;

/// <summary>
/// Answers decision requests on the serving engine with scoring rows of the continuous batch (they run beside other
/// requests and adapters). An option's log-likelihood is its label's, after the question's prompt, split as
/// <c>eval --mode choice</c> splits them (<see cref="ChoiceScorer.Continuation"/>). Three waves, each finding the one
/// before it in the prefix cache, so that no token is prefilled twice:
/// <list type="number">
/// <item>the prefix every question's prompt shares (the input) is prefilled once, as a prefill-only row;</item>
/// <item>each question's prompt is one row that reads the log-probabilities of its options' first label tokens at its
/// last position — for single-token labels (Yes/No, sentiment words in large vocabularies) that is the whole answer;</item>
/// <item>each option whose label has more tokens is a row that scores the rest of its label after the cached prompt.</item>
/// </list>
/// At most one batch of rows is in flight per request, so a request with hundreds of options does not fill the queue.
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
            var first = await RunAllAsync(answered.Select(p => Row(p.PromptIds, p.PromptIds.Length, p.FirstTokens, request)).ToList(), cancel.Token).ConfigureAwait(false);
            var rest = await RunAllAsync(answered.SelectMany(p => p.Tails).Select(t => Row(t.Ids, t.ScoreFrom, [], request)).ToList(), cancel.Token).ConfigureAwait(false);

            var answers = new List<DecisionAnswer>();
            int next = 0;
            for (int i = 0, a = 0; i < plans.Count; i++)
            {
                var plan = plans[i];
                if (!plan.Fits)
                {
                    answers.Add(new RefusalAnswer(plan.Question.Name));
                    continue;
                }
                var firstLogprobs = first[a++].NextTokenLogprobs!;
                var ll = plan.Options.Select(o => (o.FirstTokenIndex >= 0 ? firstLogprobs[o.FirstTokenIndex] : 0) + (o.HasTail ? rest[next++].Score!.Value : 0)).ToList();
                answers.Add(DecisionAnswer.From(plan.Question, ll));
            }
            return new DecisionResult(answers, inputTokens, Math.Min(cached ?? first.FirstOrDefault()?.CachedTokens ?? 0, shared));
        }
        catch
        {
            cancel.Cancel(); // rows already queued leave at the next step
            throw;
        }
    }

    private static EngineRequest Row(int[] ids, int scoreFrom, int[] nextTokens, DecisionRequest request) =>
        new(ids, request.Adapter, new SamplingParams()) { ScoreFrom = scoreFrom, ScoreNextTokens = nextTokens, CachePartition = request.CachePartition };

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
