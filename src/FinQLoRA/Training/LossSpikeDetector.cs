namespace FinQLoRA.Training;

/// <summary>
/// Tells a diverging step from an ordinary noisy one: a loss that is not finite, or one more than ten times the mean
/// of the last few steps and at least 5 nats above it (a healthy run's loss moves by fractions of a nat per step;
/// a blown-up adapter makes it jump by orders of magnitude).
/// </summary>
public sealed class LossSpikeDetector
{
    private const int Window = 10;
    private readonly Queue<double> _recent = new();

    /// <returns>null when <paramref name="loss"/> is fine (and remembered), else why it is not</returns>
    public string? Check(double loss)
    {
        if (!double.IsFinite(loss)) return $"loss became {loss}";
        if (_recent.Count >= 1)
        {
            double mean = _recent.Average();
            if (loss > 10 * mean && loss > mean + 5) return $"loss spiked to {loss:G4} from a recent mean of {mean:G4}";
        }
        _recent.Enqueue(loss);
        if (_recent.Count > Window) _recent.Dequeue();
        return null;
    }
}
