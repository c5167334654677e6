using FinQLoRA.Data.Sft;
using FinQLoRA.Data.Tasks;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Evaluation;

/// <summary>
/// Classification without free text (<c>eval --mode choice</c>), lm-evaluation-harness's multiple-choice method:
/// every label is scored by the log-likelihood the model gives its tokens after the prompt, and the most likely one
/// is the prediction. A base model that never writes a label still gets a real baseline this way.
/// </summary>
public static class ChoiceScorer
{
    /// <returns>per example, the log-likelihood of each of <paramref name="labels"/> (in that order)</returns>
    public static double[][] Score(DecoderModel model, ITextTokenizer tokenizer, IReadOnlyList<Example> examples, IReadOnlyList<string> labels, int batchSize)
    {
        var rows = new List<TokenizedExample>();
        foreach (var e in examples)
            foreach (string label in labels) rows.Add(Continuation(tokenizer, e.Context, label, tokenizer.AddsBosByDefault).ToExample());
        var scores = new double[rows.Count];
        model.eval();
        using var noGrad = no_grad();
        for (int start = 0; start < rows.Count; start += batchSize)
        {
            using var scope = NewDisposeScope();
            var chunk = rows.Skip(start).Take(batchSize).ToList();
            using var batch = SftCollator.Collate(chunk, tokenizer.PadId, model.Device);
            var logits = model.Forward(batch.InputIds, batch.PadMask).to(ScalarType.Float32);
            long t = logits.shape[1];
            // position i predicts token i+1; only the label's tokens count
            var logp = logits.narrow(1, 0, t - 1).log_softmax(-1);
            var wanted = batch.Labels.narrow(1, 1, t - 1);
            var keep = wanted.ne(TokenizedExample.IgnoreIndex);
            var picked = logp.gather(-1, wanted.clamp_min(0).unsqueeze(-1)).squeeze(-1) * keep;
            var sums = picked.sum(1).to(ScalarType.Float64).cpu().data<double>().ToArray();
            sums.CopyTo(scores, start);
        }
        return examples.Select((_, i) => scores.Skip(i * labels.Count).Take(labels.Count).ToArray()).ToArray();
    }

    /// <summary>The label with the highest log-likelihood after each prompt.</summary>
    public static List<string> Predict(DecoderModel model, ITextTokenizer tokenizer, IReadOnlyList<Example> examples, TaskDefinition task, int batchSize)
    {
        if (!task.IsClassification || task.Labels is not { Count: > 0 } labels)
            throw UserInputException.About($"{new ConfigField("mode")} choice scores classification tasks by their labels; {task.Name} is scored by {task.Metric}; use {new ConfigField("mode")} generate");
        var scores = Score(model, tokenizer, examples, labels, batchSize);
        return scores.Select(s => labels[Array.IndexOf(s, s.Max())]).ToList();
    }

    /// <summary>
    /// Prompt + label ids with only the label's tokens as targets, split as lm-evaluation-harness does: whitespace
    /// at the end of the prompt moves to the front of the label (a SentencePiece "▁" belongs to the word after it),
    /// the whole text is encoded once, and the label's tokens are those past the prompt's own encoding.
    /// </summary>
    /// <param name="bos">whether the prompt's ids start with an added BOS (eval: the tokenizer's default; a chat
    /// render carries its own)</param>
    public static LabelContinuation Continuation(ITextTokenizer tokenizer, string context, string label, bool bos)
    {
        string trimmed = context.TrimEnd();
        string continuation = context[trimmed.Length..] + label;
        int promptLength = tokenizer.Encode(trimmed, bos).Length;
        int[] ids = tokenizer.Encode(trimmed + continuation, bos);
        if (ids.Length <= promptLength) ids = [.. tokenizer.Encode(trimmed, bos), .. tokenizer.Encode(label, addBos: false)];
        return new LabelContinuation(ids, promptLength);
    }
}

/// <summary>A prompt and one label encoded together: the label's tokens are <c>InputIds[PromptLength..]</c>.</summary>
public sealed record LabelContinuation(int[] InputIds, int PromptLength)
{
    /// <summary>As a training-style row whose targets are the label's tokens only.</summary>
    public TokenizedExample ToExample() =>
        new(InputIds, InputIds.Select((id, i) => i < PromptLength ? TokenizedExample.IgnoreIndex : id).ToArray());
}
