using FinQLoRA.Data.Formats;
using FinQLoRA.Data.Sft;
using FinQLoRA.Data.Tasks;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Evaluation;
using FinQLoRA.Inference;
using FinQLoRA.Serving;
using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Training;

/// <summary>
/// Evaluation while training, as the Hugging Face Trainer does it: the loss on every held-out example (the same
/// target-token cross-entropy as training), and the task's own metric on the first <c>eval_samples</c> of each task
/// by batched greedy generation — the task's scorer when <c>eval_task</c> names one (or a source is named after a
/// task), else exact match on the trimmed
/// text with weighted F1 over the targets. A task-family run reports every source separately as well.
/// </summary>
public sealed class TrainingEvaluator(IReadOnlyList<(string Name, List<SftRecord> Records)> tasks, SftTokenizer sft, ITextTokenizer tokenizer,
    TrainConfig config, Device device)
{
    private readonly List<(string Name, List<Example> Answers, List<TokenizedExample> Tokens)> _tasks =
        tasks.Select(t => (t.Name, t.Records.Select(r => r.Answer).ToList(), t.Records.Select(r => sft.Tokenize(r)).ToList())).ToList();

    public int Count => _tasks.Sum(t => t.Answers.Count);

    public EvalResult Evaluate(DecoderModel model, int step)
    {
        bool wasTraining = model.training;
        model.eval();
        try
        {
            var parts = _tasks.Select(t => (t.Name, Part: EvaluateTask(model, t.Name, t.Answers, t.Tokens))).ToList();
            double lossSum = parts.Sum(p => p.Part.LossSum), tokens = parts.Sum(p => p.Part.Tokens);
            var perTask = parts.Select(p => p.Part.Result(p.Name, step)).ToList();
            // the metric over all tasks: each task's own (its scorer's, or exact match), weighted by examples scored
            int generated = perTask.Sum(t => t.Generated);
            double? accuracy = generated == 0 ? null : perTask.Where(t => t.Generated > 0).Sum(t => t.Accuracy!.Value * t.Generated) / generated;
            double? f1 = generated == 0 || perTask.Any(t => t.Generated > 0 && t.F1 == null) ? null
                : perTask.Where(t => t.Generated > 0).Sum(t => t.F1!.Value * t.Generated) / generated;
            return new EvalResult(step, lossSum / Math.Max(tokens, 1), accuracy, f1, Count, generated) { Tasks = parts.Count > 1 ? perTask : null };
        }
        finally
        {
            if (wasTraining) model.train();
        }
    }

    private sealed record TaskPart(double LossSum, double Tokens, List<string> Truth, List<string> Predicted, ScoreResult? Scored, int Examples)
    {
        public EvalResult Result(string name, int step)
        {
            var (accuracy, f1) = Scored is { } s ? (s.Accuracy, s.WeightedF1) : Score(Truth, Predicted);
            return new EvalResult(step, LossSum / Math.Max(Tokens, 1), accuracy, f1, Examples, Truth.Count) { Name = name };
        }
    }

    private TaskPart EvaluateTask(DecoderModel model, string name, List<Example> answers, List<TokenizedExample> tokenized)
    {
        double sum = 0, count = 0;
        using (no_grad())
            foreach (var chunk in tokenized.Chunk(config.BatchSize))
            {
                using var scope = NewDisposeScope();
                using var batch = SftCollator.Collate(chunk, tokenizer.PadId, device);
                sum += SupervisedLoss.Sum(model, batch).item<float>();
                count += chunk.Sum(e => e.Labels.Skip(1).Count(l => l != TokenizedExample.IgnoreIndex));
            }
        int n = Math.Min(config.EvalSamples, answers.Count);
        if (n == 0) return new TaskPart(sum, count, [], [], null, answers.Count);
        var sample = answers.Take(n).ToList();
        // eval_task, or a family source named after a known task (fpb=…, tfns=…), scores with that task's metric
        var task = config.EvalTask != null ? TaskRegistry.Get(config.EvalTask) : TaskRegistry.Names.Contains(name) ? TaskRegistry.Get(name) : null;
        int longestTarget = sample.Max(e => tokenizer.Encode(e.Target, addBos: false).Length);
        var options = new GenerationOptions { MaxNewTokens = Math.Max(task?.MaxNewTokens ?? 0, longestTarget + 2) };
        var outputs = new TextGenerator(model, tokenizer).Generate(sample.Select(e => e.Context).ToList(), options, config.BatchSize);
        var truth = sample.Select(e => e.Target.Trim()).ToList();
        var predicted = outputs.Select(o => o.Text.Trim()).ToList();
        var scored = task != null ? TaskScorer.Score(task, truth.Zip(predicted).ToList()) : null;
        return new TaskPart(sum, count, truth, predicted, scored, answers.Count);
    }

    private static (double? Accuracy, double? F1) Score(List<string> truth, List<string> predicted) =>
        truth.Count == 0 ? (null, null)
        : (truth.Where((t, i) => t == predicted[i]).Count() / (double)truth.Count, WeightedF1.Compute(truth, predicted));

    /// <summary>The held-out records of one source: a seeded <c>eval_split</c> share of its records (removed from
    /// them), or none.</summary>
    public static (List<SftRecord> Train, List<SftRecord> Eval) Split(List<SftRecord> train, TrainConfig c)
    {
        if (c.EvalSplit <= 0 || c.EvalData != null) return (train, []);
        int take = Math.Max(1, (int)Math.Ceiling(train.Count * c.EvalSplit));
        if (take >= train.Count) throw new UserInputException($"eval_split = {c.EvalSplit} leaves no training examples out of {train.Count}; use a smaller share");
        var order = Enumerable.Range(0, train.Count).ToArray();
        new Random(unchecked((int)c.Seed)).Shuffle(order);
        var held = order.Take(take).ToHashSet();
        return (train.Where((_, i) => !held.Contains(i)).ToList(), train.Where((_, i) => held.Contains(i)).ToList());
    }
}
