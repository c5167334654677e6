using System.Globalization;
using System.Text.Json.Nodes;
using FinQLoRA.Runtime;

namespace FinQLoRA.Training;

/// <summary>One logging step: printed on the terminal and appended to metrics.jsonl.</summary>
public sealed record MetricsLine(int Step, int TotalSteps, double Epoch, double Loss, double Lr, double TokensPerSecond, double EtaSeconds, long RssBytes)
{
    public string Format() => string.Create(CultureInfo.InvariantCulture,
        $"step {Step}/{TotalSteps} | epoch {Epoch:F2} | loss {Loss:F4} | lr {Lr:E2} | {TokensPerSecond:F0} tok/s | ETA {TimeSpan.FromSeconds(Math.Round(EtaSeconds)):hh\\:mm\\:ss} | mem {MemoryUsage.Format(RssBytes)}");

    public JsonObject ToJson() => new()
    {
        ["step"] = Step, ["epoch"] = Math.Round(Epoch, 4), ["loss"] = Loss, ["lr"] = Lr,
        ["tokens_per_second"] = Math.Round(TokensPerSecond, 1), ["eta_seconds"] = Math.Round(EtaSeconds, 1), ["rss_bytes"] = RssBytes,
    };
}
