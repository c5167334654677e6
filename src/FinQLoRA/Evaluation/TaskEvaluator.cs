using System.Diagnostics;
using FinQLoRA.Data.Sft;
using FinQLoRA.Data.Tasks;
using FinQLoRA.Inference;
using FinQLoRA.Models;
using FinQLoRA.Runtime;

namespace FinQLoRA.Evaluation;

/// <summary>
/// Runs a task's test examples through batched greedy generation with the task's <c>max_new_tokens</c> and scores
/// the outputs with the task's metric. Writes <c>predictions.jsonl</c> and <c>results.json</c> under
/// <c>outDir/&lt;task&gt;/</c> when an output folder is given.
/// </summary>
/// <param name="singleProcessModel">the model, for choice scoring; null in a pipeline (choice runs in one process)</param>
public sealed class TaskEvaluator(IBatchGenerator generator, DecoderModel? singleProcessModel = null)
{
    /// <param name="Choice">score classification labels by log-likelihood (<see cref="ChoiceScorer"/>) instead of generating</param>
    public sealed record Options(string ModelName, int? Bits, int? Rank, bool FineTuned, int BatchSize = 8, int? Limit = null,
        long AdapterBytes = 0, double DeviceHours = 0, bool Choice = false);

    /// <returns>The result, or null on pipeline ranks other than 0 (they take part in generation; rank 0 scores).</returns>
    public (RunResult? Result, IReadOnlyList<Prediction> Predictions) Evaluate(string taskName, IReadOnlyList<Example> examples, Options options, string? outDir = null)
    {
        var task = TaskRegistry.Get(taskName);
        var items = options.Limit is int n ? examples.Take(n).ToList() : examples.ToList();
        if (items.Count == 0) throw new UserInputException($"no examples to evaluate for task '{taskName}'");
        var timer = Stopwatch.StartNew();
        List<string> outputs;
        if (options.Choice)
        {
            if (singleProcessModel is null)
                throw UserInputException.About($"{new ConfigField("mode")} choice runs in one process; drop {new ConfigField("pipeline_stages")}");
            outputs = ChoiceScorer.Predict(singleProcessModel, generator.Tokenizer, items, task, options.BatchSize);
        }
        else
            outputs = generator.Generate(items.Select(e => e.Context).ToList(),
                new GenerationOptions { MaxNewTokens = task.MaxNewTokens, AddBos = generator.Tokenizer.AddsBosByDefault }, options.BatchSize)
                .Select(g => g.Text.Trim()).ToList();
        double seconds = timer.Elapsed.TotalSeconds;
        if (outputs.Count == 0) return (null, []);
        var predictions = items.Zip(outputs, (e, o) => new Prediction(e.Context, e.Target, o)).ToList();
        var score = TaskScorer.Score(task, predictions.Select(p => (p.Target, p.Output)).ToList());
        var result = new RunResult(task.Name, options.ModelName, options.Bits, options.Rank, options.FineTuned,
            score.Accuracy, score.WeightedF1, score.N, options.BatchSize, seconds / items.Count,
            MemoryUsage.PeakRssBytes, options.DeviceHours, options.AdapterBytes);
        if (outDir != null)
        {
            string dir = Path.Combine(outDir, task.Name);
            var correct = predictions.Select(p => TaskScorer.Score(task, [(p.Target, p.Output)]).Accuracy >= 1.0).ToList();
            PredictionFile.Write(Path.Combine(dir, "predictions.jsonl"), predictions, correct);
            RunResultFile.Write(Path.Combine(dir, RunResultFile.FileName), [result]);
        }
        return (result, predictions);
    }
}
