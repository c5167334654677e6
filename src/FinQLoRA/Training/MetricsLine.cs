using System.Globalization;
using System.Text.Json.Nodes;
using FinQLoRA.Runtime;

namespace FinQLoRA.Training;

/// <summary>One logging step: printed on the terminal and appended to metrics.jsonl. <paramref name="CommBytes"/>:
/// bytes rank 0 handed to the network per optimizer step since the previous line, for every collective of the step
/// (gradients or 0/1 Adam's compressed exchange, plus the loss/token counts), per <see cref="Distributed.TrafficModel"/>;
/// 0 with one process.</summary>
public sealed record MetricsLine(int Step, int TotalSteps, double Epoch, double Loss, double Lr, double TokensPerSecond, double EtaSeconds, long RssBytes, long CommBytes = 0)
{
    /// <summary>ε spent so far by a differentially private run (<see cref="Privacy.PrivacyPlan"/>); null without DP.</summary>
    public double? Epsilon { get; init; }

    /// <summary>A differentially private step's units (all ranks) and the share of them whose gradient was clipped:
    /// Opacus users watch the latter to tune C (most units clipped is the usual, working regime).</summary>
    public (long Units, double ClippedFraction)? DpStep { get; init; }

    public string Format() => string.Create(CultureInfo.InvariantCulture,
        $"step {Step}/{TotalSteps} | epoch {Epoch:F2} | loss {Loss:F4} | lr {Lr:E2} | {TokensPerSecond:F0} tok/s | ETA {TimeSpan.FromSeconds(Math.Round(EtaSeconds)):hh\\:mm\\:ss} | mem {MemoryUsage.Format(RssBytes)}{(CommBytes > 0 ? " | comm " + CommBytes.ToString(CultureInfo.InvariantCulture) + " B/step" : "")}{(Epsilon is double e ? " | ε " + e.ToString("F3", CultureInfo.InvariantCulture) : "")}");

    public JsonObject ToJson()
    {
        var o = new JsonObject
        {
            ["step"] = Step, ["epoch"] = Math.Round(Epoch, 4), ["loss"] = Loss, ["lr"] = Lr,
            ["tokens_per_second"] = Math.Round(TokensPerSecond, 1), ["eta_seconds"] = Math.Round(EtaSeconds, 1), ["rss_bytes"] = RssBytes,
            ["comm_bytes"] = CommBytes,
        };
        if (Epsilon is double epsilon) o["epsilon"] = epsilon;
        if (DpStep is var (units, clipped))
        {
            o["dp_units"] = units;
            o["dp_clipped_fraction"] = Math.Round(clipped, 4);
        }
        return o;
    }
}
