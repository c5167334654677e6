using System.Globalization;
using System.Text.Json.Nodes;
using FinQLoRA.Adapters;
using FinQLoRA.Adapters.Averaging;
using FinQLoRA.Training;

namespace FinQLoRA.Recipes;

/// <summary>
/// <c>finqlora adapters average</c>: adapters trained at several sites on one base, averaged with weights (FedAvg, as
/// FinLoRA's federated example does) into one PEFT adapter. Everything is checked before any tensor is computed
/// (<see cref="AdapterCompatibility"/>). FFA-LoRA adapters (one frozen A) average exactly; others average A and B
/// separately, which is not the average of the products B·A, and the result says so.
/// </summary>
public static class AdapterAverageRecipe
{
    public static AdapterAverageResult Run(AdapterAverageOptions o)
    {
        var log = o.Progress ?? (_ => { });
        CheckOut(o.OutPath);
        if (o.Inputs.Count < 2)
            throw UserInputException.About($"adapters average: {o.Inputs.Count} {new ConfigField("adapter")} given; an average needs at least two");
        var opened = new List<AdapterToAverage>();
        try
        {
            foreach (var input in o.Inputs) opened.Add(AdapterToAverage.Open(input));
            double total = o.Inputs.Sum(i => i.Weight);
            var weights = o.Inputs.Select(i => i.Weight / total).ToList();
            var compatibility = AdapterCompatibility.Check(opened);
            var first = opened[0].Config;
            log($"adapters average: {opened.Count} adapters (r {first.Rank}, alpha {first.Alpha.ToString(CultureInfo.InvariantCulture)}, targets {string.Join(",", first.TargetModules)}), "
                + $"weights {string.Join(", ", o.Inputs.Select((input, i) => $"{input.Name} {weights[i].ToString("0.####", CultureInfo.InvariantCulture)}"))}; base compared by {compatibility.BaseCheckedBy}");
            bool exact = compatibility.SharedA && !first.UseDora;
            string? warning = exact ? null : Warning(compatibility, first.UseDora);
            log(exact ? "adapters average: every A is bit-identical (FFA-LoRA): averaging B alone gives exactly the average of the products B·A"
                      : $"warning: {warning}");

            var tensors = AdapterFactorAverage.Of(opened, weights, compatibility.SharedA);
            try
            {
                var lineage = AveragedAdapterLineage.Describe(opened, weights, compatibility, exact, warning);
                var config = (JsonObject)opened[0].ConfigJson.DeepClone();
                long bytes = PeftAdapterFiles.WriteFolder(o.OutPath, config, tensors, folder => RunLineage.WriteInto(folder, lineage));
                return new AdapterAverageResult(Path.GetFullPath(o.OutPath), opened.Count, tensors.Count, bytes, exact, warning, compatibility);
            }
            finally
            {
                foreach (var (_, t) in tensors) t.Dispose();
            }
        }
        finally
        {
            foreach (var a in opened) a.Dispose();
        }
    }

    private static string Warning(AdapterCompatibility c, bool dora) =>
        (c.SharedA ? "" : "the adapters' A matrices differ, so A and B were averaged separately (FedAvg on the LoRA factors): avg(B)·avg(A) is not the average of the products B·A; ")
        + (dora ? "DoRA magnitudes were averaged too, and DoRA's row normalisation is not linear in the factors; " : "")
        + "for an exact average, train every site with lora_a_frozen true (FFA-LoRA), the same seed and use_dora false";

    /// <summary>The output is a new folder: an existing file or non-empty folder is the user's and is refused.</summary>
    private static void CheckOut(string outPath)
    {
        if (string.IsNullOrWhiteSpace(outPath)) throw UserInputException.About($"adapters average: {new ConfigField("out")} is missing; give a new folder for the averaged adapter");
        if (File.Exists(outPath))
            throw UserInputException.About($"adapters average: {new ConfigField("out")} {outPath} is a file; give a new or empty folder for the averaged adapter");
        if (Directory.Exists(outPath) && Directory.EnumerateFileSystemEntries(outPath).Any())
            throw UserInputException.About($"adapters average: {new ConfigField("out")} {outPath} exists and is not empty; it is left as it is: give a new or empty folder");
    }
}
