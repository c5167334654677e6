namespace FinQLoRA.Training;

/// <summary>What a finished run reports (also written to run.json).</summary>
public sealed record TrainResult(int Steps, double FinalLoss, double? EvalLoss, double TrainSeconds, double LoadSeconds,
    long TokensSeen, long PeakRssBytes, long AdapterBytes, string AdapterDir, double WallSeconds)
{
    public double TokensPerSecond => TokensSeen / Math.Max(TrainSeconds, 1e-9);

    /// <summary>The (ε, δ) a differentially private run spent; null without DP.</summary>
    public Privacy.Accounting.PrivacySpent? Privacy { get; init; }
}
