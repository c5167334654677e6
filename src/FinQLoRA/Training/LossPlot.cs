namespace FinQLoRA.Training;

/// <summary>Loss curves as a PNG (ScottPlot), one line per series (e.g. AdamW vs 0/1 Adam).</summary>
public static class LossPlot
{
    public static void Write(string path, IReadOnlyList<(string Label, double[] Steps, double[] Loss)> series, string title = "Training loss")
    {
        var plot = new ScottPlot.Plot();
        foreach (var (label, steps, loss) in series)
        {
            if (steps.Length == 0) continue;
            var line = plot.Add.Scatter(steps, loss);
            line.LegendText = label;
            line.MarkerSize = steps.Length > 60 ? 0 : 4;
        }
        plot.Title(title);
        plot.XLabel("optimizer step");
        plot.YLabel("loss (cross-entropy per target token)");
        plot.ShowLegend();
        string temp = path + ".tmp.png";
        try
        {
            plot.SavePng(temp, 900, 540);
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            if (File.Exists(temp)) File.Delete(temp); // never leave loss.png.tmp.png behind
            throw;
        }
    }
}
