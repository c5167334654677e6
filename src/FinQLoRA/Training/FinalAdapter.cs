using System.Text.Json.Nodes;
using FinQLoRA.Adapters;
using FinQLoRA.Models;

namespace FinQLoRA.Training;

/// <summary>
/// The run's product, written by the main rank: <c>out/adapter</c> (PEFT files, a model card and the lineage of its
/// inputs, whose hashes then include the adapter's own files) and the loss plot.
/// </summary>
public static class FinalAdapter
{
    public const string FolderName = "adapter";

    public static string Folder(TrainConfig c) => Path.Combine(c.Out, FolderName);

    /// <param name="privacy">the DP record (<see cref="Privacy.PrivacyPlan.Record"/>) of a private run</param>
    /// <returns>what was saved and the lineage (with the adapter's file hashes) that run.json records</returns>
    public static (PeftAdapterInfo Info, JsonObject Lineage) Write(TrainConfig c, DecoderModel model, LoraConfig lora, MetricsLog metrics,
        int step, double lastLoss, double? evalLoss, long tokensSeen, JsonObject? privacy = null)
    {
        string adapterDir = Folder(c);
        var lineage = RunLineage.Describe(c);
        if (privacy != null) lineage["privacy"] = privacy.DeepClone(); // the adapter carries its (ε, δ) wherever it is copied
        var info = PeftAdapterFiles.Save(adapterDir, model, lora, dtype: c.SavedAdapterDtype, extraFiles: folder =>
        {
            File.WriteAllText(Path.Combine(folder, ModelCard.FileName), ModelCard.Render(c, lineage, step, lastLoss, evalLoss, tokensSeen));
            RunLineage.WriteInto(folder, lineage);
        });
        lineage["adapter_files"] = RunLineage.HashFolder(adapterDir, IO.OutputMarker.FileName);
        metrics.WritePlot(Path.Combine(c.Out, "loss.png"));
        return (info, lineage);
    }
}
