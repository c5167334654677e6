using FinQLoRA.Data.Chat;
using FinQLoRA.Evaluation;

namespace FinQLoRA.Serving.Decisions;

/// <summary>
/// How one question is scored: its prompt's ids, the first label token of each option (read at the prompt's last
/// position), and a tail row for each option whose label has more tokens (prompt + label, scored from the label's
/// second token). Each option's ids are the prompt and label encoded together as <c>eval --mode choice</c> encodes
/// them; where that joint encoding changes the prompt's own tokens (a merge across the boundary), the option is
/// scored whole by its tail row from the label's first token instead.
/// </summary>
internal sealed record QuestionPlan(DecisionQuestion Question, int[] PromptIds, int[] FirstTokens, IReadOnlyList<OptionPlan> Options,
    IReadOnlyList<(int[] Ids, int ScoreFrom)> Tails, int LabelTokens, bool Fits)
{
    public static QuestionPlan Of(DecisionQuestion question, string context, ServingEngine engine, ChatFormat? format)
    {
        bool bos = DecisionPrompt.AddsBos(format, engine.Tokenizer);
        var rows = question.Options.Select(label => ChoiceScorer.Continuation(engine.Tokenizer, context, label, bos)).ToList();
        int[] prompt = rows[0].InputIds[..rows[0].PromptLength];
        var first = new List<int>();
        var options = new List<OptionPlan>();
        var tails = new List<(int[], int)>();
        foreach (var row in rows)
        {
            bool samePrompt = row.PromptLength == prompt.Length && row.InputIds.AsSpan(0, prompt.Length).SequenceEqual(prompt);
            if (!samePrompt)
            {
                // scored whole by its own row; its "first token" slot reads any token and is replaced by the tail's sum
                options.Add(new OptionPlan(FirstTokenIndex: -1, HasTail: true));
                tails.Add((row.InputIds, row.PromptLength));
                continue;
            }
            int token = row.InputIds[prompt.Length];
            int index = first.IndexOf(token);
            if (index < 0)
            {
                index = first.Count;
                first.Add(token);
            }
            bool tail = row.InputIds.Length > prompt.Length + 1;
            options.Add(new OptionPlan(index, tail));
            if (tail) tails.Add((row.InputIds, prompt.Length + 1));
        }
        // a question whose longest option does not fit the context is refused, not truncated
        bool fits = rows.All(r => r.InputIds.Length <= engine.Options.MaxModelLen);
        return new QuestionPlan(question, prompt, [.. first], options, tails, rows.Sum(r => r.InputIds.Length - r.PromptLength), fits);
    }
}

/// <summary>Where an option's log-likelihood comes from: the first-token log-probability at <see cref="FirstTokenIndex"/>
/// of its question row (−1: none), plus its tail row's score when it has one.</summary>
internal sealed record OptionPlan(int FirstTokenIndex, bool HasTail);
