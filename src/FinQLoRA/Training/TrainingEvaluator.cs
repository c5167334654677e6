using FinQLoRA.Data.Formats;
using FinQLoRA.Data.Sft;
using FinQLoRA.Data.Tasks;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Evaluation;
using FinQLoRA.Inference;
using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Training;

/// <summary>
/// Evaluation while training, as the Hugging Face Trainer does it: the loss on every held-out example (the same
/// target-token cross-entropy as training), and the task's own metric on the first <c>eval_samples</c> of them by
/// batched greedy generation — the task's scorer when <c>eval_task</c> names one, else exact match on the trimmed
/// text with weighted F1 over the targets.
/// </summary>
public sealed class TrainingEvaluator(IReadOnlyList<SftRecord> records, IReadOnlyList<TokenizedExample> tokenized, ITextTokenizer tokenizer,
    TrainConfig config, Device device)
{
    private readonly List<Example> examples = records.Select(r => r.Answer).ToList();

    public int Count => examples.Count;

    public EvalResult Evaluate(LlamaModel model, int step)
    {
        bool wasTraining = model.training;
        model.eval();
        try
        {
            double loss = Loss(model);
            var (accuracy, f1, generated) = Metric(model);
            return new EvalResult(step, loss, accuracy, f1, examples.Count, generated);
        }
        finally
        {
            if (wasTraining) model.train();
        }
    }

    private double Loss(LlamaModel model)
    {
        using var noGrad = no_grad();
        double sum = 0, count = 0;
        foreach (var chunk in tokenized.Chunk(config.BatchSize))
        {
            using var scope = NewDisposeScope();
            using var batch = SftCollator.Collate(chunk, tokenizer.PadId, device);
            sum += SftTrainer.TokenLoss(model.Forward(batch.InputIds, batch.PadMask), batch.Labels).item<float>();
            count += chunk.Sum(e => e.Labels.Skip(1).Count(l => l != TokenizedExample.IgnoreIndex));
        }
        return sum / Math.Max(count, 1);
    }

    private (double? Accuracy, double? F1, int Generated) Metric(LlamaModel model)
    {
        int n = Math.Min(config.EvalSamples, examples.Count);
        if (n == 0) return (null, null, 0);
        var sample = examples.Take(n).ToList();
        var task = config.EvalTask != null ? TaskRegistry.Get(config.EvalTask) : null;
        int longestTarget = sample.Max(e => tokenizer.Encode(e.Target, addBos: false).Length);
        var options = new GenerationOptions { MaxNewTokens = Math.Max(task?.MaxNewTokens ?? 0, longestTarget + 2) };
        var outputs = new TextGenerator(model, tokenizer).Generate(sample.Select(e => e.Context).ToList(), options, config.BatchSize);
        var pairs = sample.Zip(outputs, (e, o) => (e.Target, o.Text)).ToList();
        if (task != null)
        {
            var score = TaskScorer.Score(task, pairs);
            return (score.Accuracy, score.WeightedF1, n);
        }
        var truth = pairs.Select(p => p.Target.Trim()).ToList();
        var predicted = pairs.Select(p => p.Text.Trim()).ToList();
        double accuracy = truth.Where((t, i) => t == predicted[i]).Count() / (double)n;
        return (accuracy, WeightedF1.Compute(truth, predicted), n);
    }

    /// <summary>The held-out records: <c>eval_data</c>'s, or a seeded <c>eval_split</c> share of the training
    /// records (removed from them), or none.</summary>
    public static (List<SftRecord> Train, List<SftRecord> Eval) Split(List<SftRecord> train, List<SftRecord>? evalData, TrainConfig c)
    {
        if (evalData != null) return (train, evalData);
        if (c.EvalSplit <= 0) return (train, []);
        int take = Math.Max(1, (int)Math.Ceiling(train.Count * c.EvalSplit));
        if (take >= train.Count) throw new UserInputException($"eval_split = {c.EvalSplit} leaves no training examples out of {train.Count}; use a smaller share");
        var order = Enumerable.Range(0, train.Count).ToArray();
        new Random(unchecked((int)c.Seed)).Shuffle(order);
        var held = order.Take(take).Order().ToHashSet();
        return (train.Where((_, i) => !held.Contains(i)).ToList(), train.Where((_, i) => held.Contains(i)).ToList());
    }
}
