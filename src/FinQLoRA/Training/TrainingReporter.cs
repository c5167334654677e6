using TorchSharp;

namespace FinQLoRA.Training;

/// <summary>
/// Experiment tracking (<c>report_to</c>): with <c>tensorboard</c>, scalars go to TensorBoard event files under
/// <c>OUT/runs/</c> through TorchSharp's SummaryWriter (the library writes the format; we do not). With
/// <c>none</c> nothing is written.
/// </summary>
public sealed class TrainingReporter
{
    public const string TensorBoardFolder = "runs";
    private readonly TorchSharp.Modules.SummaryWriter? _writer;

    public TrainingReporter(TrainConfig c, bool enabled)
    {
        if (enabled && c.ReportTo == "tensorboard")
            _writer = torch.utils.tensorboard.SummaryWriter(Path.Combine(c.Out, TensorBoardFolder), createRunName: false);
    }

    public void Scalar(string tag, double value, int step)
    {
        if (_writer != null && double.IsFinite(value)) _writer.add_scalar(tag, (float)value, step);
    }

    public void Train(MetricsLine line, double gradNorm)
    {
        Scalar("train/loss", line.Loss, line.Step);
        Scalar("train/learning_rate", line.Lr, line.Step);
        Scalar("train/grad_norm", gradNorm, line.Step);
        Scalar("train/tokens_per_second", line.TokensPerSecond, line.Step);
        Scalar("train/rss_bytes", line.RssBytes, line.Step);
        if (line.Epsilon is double epsilon) Scalar("train/epsilon", epsilon, line.Step);
        if (line.DpStep is var (units, clipped))
        {
            Scalar("train/dp_units", units, line.Step);
            Scalar("train/dp_clipped_fraction", clipped, line.Step);
        }
    }

    public void Eval(EvalResult r)
    {
        Scalar("eval/loss", r.Loss, r.Step);
        if (r.Accuracy is double a) Scalar("eval/accuracy", a, r.Step);
        if (r.F1 is double f) Scalar("eval/f1", f, r.Step);
        foreach (var t in r.Tasks ?? [])
        {
            Scalar($"eval/{t.Name}/loss", t.Loss, r.Step);
            if (t.Accuracy is double ta) Scalar($"eval/{t.Name}/accuracy", ta, r.Step);
        }
    }
}
