using System.Text.Json.Nodes;
using FinQLoRA.IO;

namespace FinQLoRA.Training;

/// <summary>metrics.jsonl (one line per logging step) and the loss curve. On resume, lines after the checkpoint's
/// step are dropped so the file describes exactly the run that produced the final adapter.</summary>
public sealed class MetricsLog
{
    private readonly string _path;
    private readonly bool _enabled;
    private readonly List<(int Step, double Loss)> _points = new();

    public MetricsLog(string outDir, bool enabled, int truncateAfterStep)
    {
        _path = Path.Combine(outDir, "metrics.jsonl");
        _enabled = enabled;
        if (!enabled) return;
        Directory.CreateDirectory(outDir);
        var kept = new List<string>();
        if (File.Exists(_path) && truncateAfterStep > 0)
        {
            foreach (string line in File.ReadLines(_path))
            {
                var o = JsonNode.Parse(line);
                int step = o?["step"]?.GetValue<int>() ?? int.MaxValue;
                if (step > truncateAfterStep) continue;
                kept.Add(line);
                if (o!["loss"] is JsonValue loss) _points.Add((step, loss.GetValue<double>())); // eval lines carry eval_loss
            }
        }
        AtomicFile.WriteAllText(_path, kept.Count > 0 ? string.Join("\n", kept) + "\n" : "");
    }

    public IReadOnlyList<(int Step, double Loss)> Points => _points;

    public void Append(MetricsLine line)
    {
        _points.Add((line.Step, line.Loss));
        if (_enabled) File.AppendAllText(_path, line.ToJson().ToJsonString() + "\n");
    }

    /// <summary>An evaluation line (<c>eval_loss</c>, <c>eval_accuracy</c>, <c>eval_f1</c>) in the same file.</summary>
    public void AppendEval(EvalResult result)
    {
        if (_enabled) File.AppendAllText(_path, result.ToJson().ToJsonString() + "\n");
    }

    public void WritePlot(string path) =>
        LossPlot.Write(path, [("train loss", _points.Select(p => (double)p.Step).ToArray(), _points.Select(p => p.Loss).ToArray())]);
}
