using FinQLoRA.Data.Chat;
using FinQLoRA.Evaluation;

namespace FinQLoRA.Serving.Decisions;

/// <summary>
/// How one question is scored: one row of its prompt whose branches are its options' labels (scored side by side in
/// that row's forward), each option's ids being the prompt and label encoded together as <c>eval --mode choice</c>
/// encodes them. Where that joint encoding changes the prompt's own tokens (a merge across the boundary), the option
/// is scored by a row of its own instead, its label scored after its own prompt ids.
/// </summary>
internal sealed record QuestionPlan(DecisionQuestion Question, int[] PromptIds, IReadOnlyList<OptionPlan> Options,
    IReadOnlyList<LabelContinuation> OwnRows, int LabelTokens, bool Fits)
{
    public static QuestionPlan Of(DecisionQuestion question, string context, ServingEngine engine, ChatFormat? format)
    {
        bool bos = DecisionPrompt.AddsBos(format, engine.Tokenizer);
        var rows = question.Options.Select(label => ChoiceScorer.Continuation(engine.Tokenizer, context, label, bos)).ToList();
        int[] prompt = rows[0].InputIds[..rows[0].PromptLength];
        var options = new List<OptionPlan>();
        var own = new List<LabelContinuation>();
        int branches = 0;
        foreach (var row in rows)
        {
            bool samePrompt = row.PromptLength == prompt.Length && row.InputIds.AsSpan(0, prompt.Length).SequenceEqual(prompt);
            if (samePrompt) options.Add(new OptionPlan(Branch: branches++, OwnRow: -1, row.InputIds[prompt.Length..]));
            else
            {
                options.Add(new OptionPlan(Branch: -1, OwnRow: own.Count, []));
                own.Add(row);
            }
        }
        int labelTokens = rows.Sum(r => r.InputIds.Length - r.PromptLength);
        // a question whose prompt and options do not fit the context is refused, not truncated
        int branchTokens = options.Sum(o => Math.Max(0, o.Label.Length - 1));
        bool fits = prompt.Length + branchTokens <= engine.Options.MaxModelLen && own.All(r => r.InputIds.Length <= engine.Options.MaxModelLen);
        return new QuestionPlan(question, prompt, options, own, labelTokens, fits);
    }

    /// <summary>The labels scored as branches of the question's row, in branch order.</summary>
    public int[][] Branches => Options.Where(o => o.Branch >= 0).Select(o => o.Label).ToArray();
}

/// <summary>Where an option's log-likelihood comes from: branch <see cref="Branch"/> of its question's row (its
/// <see cref="Label"/> ids), or its own row <see cref="OwnRow"/>; the other index is −1.</summary>
internal sealed record OptionPlan(int Branch, int OwnRow, int[] Label);
