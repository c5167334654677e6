using FinQLoRA.Adapters;
using FinQLoRA.Distributed;
using FinQLoRA.Models;

namespace FinQLoRA.Training;

/// <summary>
/// Evaluation during a run: each result goes to the progress line, metrics.jsonl and TensorBoard; the best one is
/// tracked (its adapter kept in <c>best/</c> with <c>save_best</c>), and early stopping is decided from it, agreed by all ranks.
/// </summary>
public sealed class TrainingEvaluation(TrainingEvaluator evaluator, BestCheckpoint best, TrainConfig c, ICommunicator comm,
    MetricsLog metrics, TrainingReporter reporter, Action<string> log)
{
    public BestCheckpoint Best => best;

    /// <summary>The newest result, or null before the first evaluation.</summary>
    public EvalResult? Last { get; private set; }

    /// <summary>Whether <c>eval_every</c> asks for an evaluation after <paramref name="step"/> (the last step is evaluated by <see cref="Final"/>).</summary>
    public bool IsDue(int step, int totalSteps) => c.EvalEvery > 0 && step % c.EvalEvery == 0 && step < totalSteps;

    /// <returns>whether early stopping says to stop, agreed by all ranks</returns>
    public bool Evaluate(DecoderModel model, LoraConfig lora, int step)
    {
        var result = evaluator.Evaluate(model, step);
        Last = result;
        bool improved = best.Offer(result);
        if (comm.Rank == 0)
        {
            log(result.Format() + (improved ? $" | new best {c.MetricForBest}" : ""));
            metrics.AppendEval(result);
            reporter.Eval(result);
            if (improved && c.SaveBest)
                PeftAdapterFiles.Save(Path.Combine(c.Out, BestCheckpoint.FolderName), model, lora, dtype: c.SavedAdapterDtype, extraFiles: folder =>
                    File.WriteAllText(Path.Combine(folder, "best_eval.json"), result.ToJson().ToJsonString() + "\n"));
        }
        return RankSums.Of(comm, best.ShouldStop ? 1 : 0) > 0;
    }

    /// <summary>The evaluation of the final weights: the one just made when early stopping ended the run at <paramref name="step"/>, else a new one.</summary>
    public EvalResult Final(DecoderModel model, LoraConfig lora, int step)
    {
        if (Last is { } last && last.Step == step) return last;
        Evaluate(model, lora, step);
        return Last!;
    }

    /// <summary>The early-stopping line.</summary>
    public string StopLine(int step) =>
        $"early stopping at step {step}: {c.MetricForBest} has not improved on {best.Value:G6} (step {best.Step}) for {best.EvalsWithoutImprovement} evaluations";
}
