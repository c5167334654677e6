using ScottPlot;

namespace FinQLoRA.Evaluation;

/// <summary>Bar chart of accuracy per task, one bar per configuration, base models in grey tones and
/// fine-tuned ones in colour, so the fine-tuning gain on each task is visible at a glance.</summary>
public static class ReportChart
{
    public static byte[] AccuracyPng(Report report, int width = 1200, int height = 600)
    {
        var plot = new Plot();
        var tasks = report.Tasks;
        var configurations = report.Configurations;
        var palette = new ScottPlot.Palettes.Category10();
        var greys = new[] { Colors.Gray, Colors.DarkGray, Colors.DimGray, Colors.LightGray };
        int groupSize = configurations.Count + 1; // one empty slot between task groups
        var bars = new List<Bar>();
        int colourIndex = 0, greyIndex = 0;
        for (int c = 0; c < configurations.Count; c++)
        {
            bool fineTuned = report.Results.First(r => r.Configuration == configurations[c]).FineTuned;
            Color colour = fineTuned ? palette.GetColor(colourIndex++) : greys[greyIndex++ % greys.Length];
            for (int t = 0; t < tasks.Count; t++)
            {
                var result = report.Results.FirstOrDefault(r => r.Configuration == configurations[c] && r.Task == tasks[t]);
                if (result == null) continue;
                bars.Add(new Bar { Position = t * groupSize + c, Value = 100 * result.Accuracy, FillColor = colour });
            }
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = configurations[c], FillColor = colour });
        }
        plot.Add.Bars(bars);
        double[] ticks = tasks.Select((_, t) => t * groupSize + (configurations.Count - 1) / 2.0).ToArray();
        plot.Axes.Bottom.SetTicks(ticks, tasks.ToArray());
        plot.Axes.SetLimitsY(0, 105);
        plot.YLabel("accuracy (%)");
        plot.Title("Accuracy per task: base vs fine-tuned");
        plot.ShowLegend(Alignment.UpperRight);
        return plot.GetImageBytes(width, height, ImageFormat.Png);
    }
}
