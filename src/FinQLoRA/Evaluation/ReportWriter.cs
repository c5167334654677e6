using System.Text;
using FinQLoRA.IO;

namespace FinQLoRA.Evaluation;

/// <summary>Writes a report directory: <c>report.md</c> (accuracy, weighted F1 and cost tables) and
/// <c>accuracy.png</c> (the chart), from the results.json of each run directory.</summary>
public static class ReportWriter
{
    public const string MarkdownName = "report.md";
    public const string ChartName = "accuracy.png";

    public static Report Load(IEnumerable<string> runDirs)
    {
        var dirs = runDirs.ToList();
        if (dirs.Count == 0) throw new UserInputException("no run directories given; pass one or more directories that contain results.json");
        return new Report(dirs.SelectMany(RunResultFile.Read));
    }

    public static Report Write(IEnumerable<string> runDirs, string outDir, bool overwrite = false)
    {
        var dirs = runDirs.ToList();
        OutputPlacement.CheckFolder(outDir, dirs, overwrite);
        var report = Load(dirs);
        var md = new StringBuilder("# FinQLoRA results\n\n");
        md.Append($"Rows: model, quantization of the base weights, LoRA rank (or base). Columns: tasks. ").Append("Chart: ").Append(ChartName).Append("\n\n");
        foreach (var table in new[] { report.Accuracy(), report.WeightedF1(), report.Cost() }) md.Append(table.ToMarkdown());
        md.Append($"![accuracy per task]({ChartName})\n");
        Directory.CreateDirectory(outDir);
        if (!OutputMarker.IsMarked(outDir)) OutputMarker.Write(outDir, "report");
        AtomicFile.WriteAllText(Path.Combine(outDir, MarkdownName), md.ToString());
        AtomicFile.WriteAllBytes(Path.Combine(outDir, ChartName), ReportChart.AccuracyPng(report));
        return report;
    }
}
