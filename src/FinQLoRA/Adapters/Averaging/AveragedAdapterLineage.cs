using System.Text.Json.Nodes;
using FinQLoRA.Runtime;
using FinQLoRA.Training;

namespace FinQLoRA.Adapters.Averaging;

/// <summary>
/// lineage.json of an averaged adapter: its inputs (name, folder, weight as given and normalised, the sha256 of each
/// weights file), how the base was compared, whether the average is exact and the warning when it is not. Its
/// <c>inputs</c> and <c>adapter_files</c> take the shape a run's lineage has, so <c>finqlora verify</c> checks it, and its
/// <c>adapter</c> settings (FFA-LoRA, the seed of A) and base files let the average itself be averaged again.
/// </summary>
public static class AveragedAdapterLineage
{
    public const string Kind = "adapter_average";

    public static JsonObject Describe(IReadOnlyList<AdapterToAverage> adapters, IReadOnlyList<double> normalised, AdapterCompatibility compatibility,
        bool exact, string? warning)
    {
        var weightsFiles = adapters.Select(a => a.DescribeWeights()).ToList();
        var averaged = new JsonArray();
        for (int i = 0; i < adapters.Count; i++)
            averaged.Add(new JsonObject
            {
                ["name"] = adapters[i].Input.Name,
                ["dir"] = Path.GetFullPath(adapters[i].Input.Dir),
                ["weight"] = adapters[i].Input.Weight,
                ["normalised_weight"] = normalised[i],
                ["weights_sha256"] = weightsFiles[i]["sha256"]!.GetValue<string>(),
            });
        var inputs = new JsonObject { ["adapters"] = new JsonArray(weightsFiles.Select(f => (JsonNode)f).ToArray()) };
        if (compatibility.BaseCheckedBy == AdapterCompatibility.ByWeightHashes && adapters[0].Lineage?["inputs"]?["model"] is JsonArray model)
            inputs["model"] = model.DeepClone();
        var adapter = new JsonObject { [RunLineage.LoraAFrozenKey] = compatibility.LoraAFrozen };
        if (compatibility.LoraASeed is long seed) adapter[RunLineage.LoraASeedKey] = seed;
        return new JsonObject
        {
            ["finqlora_version"] = BuildInfo.Version,
            ["commit"] = BuildInfo.Commit,
            ["command_line"] = new JsonArray(Environment.GetCommandLineArgs().Select(a => (JsonNode)a).ToArray()),
            ["kind"] = Kind,
            ["average"] = new JsonObject
            {
                ["method"] = exact ? "average of B with the shared frozen A (exact: equals the average of the products B·A)" : "average of A and of B separately (FedAvg on the LoRA factors)",
                ["exact"] = exact,
                ["warning"] = warning,
                ["base_checked_by"] = compatibility.BaseCheckedBy,
                ["base"] = compatibility.BaseIdentity,
                ["inputs"] = averaged,
            },
            [RunLineage.AdapterKey] = adapter,
            ["inputs"] = inputs,
        };
    }
}
