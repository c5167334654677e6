using System.Text.Json.Nodes;

namespace FinQLoRA.Planning;

/// <summary>The result of <see cref="MemoryPlanner"/>: components and totals in bytes.</summary>
public sealed record MemoryPlan(string Model, int Bits, string Mode, IReadOnlyList<MemoryComponent> Components)
{
    public long WeightsBytes => Components.Where(c => c.IsWeight).Sum(c => c.Bytes);
    public long TotalBytes => Components.Sum(c => c.Bytes);

    public const double GiB = 1024.0 * 1024 * 1024;

    /// <summary><c>{"model":…,"bits":…,"mode":…,"weights_bytes":…,"total_bytes":…,"components":{name: bytes}}</c>.</summary>
    public JsonObject ToJson()
    {
        var components = new JsonObject();
        foreach (var c in Components) components[c.Name] = c.Bytes;
        return new JsonObject
        {
            ["model"] = Model,
            ["bits"] = Bits,
            ["mode"] = Mode,
            ["weights_bytes"] = WeightsBytes,
            ["total_bytes"] = TotalBytes,
            ["weights_gib"] = Math.Round(WeightsBytes / GiB, 3),
            ["total_gib"] = Math.Round(TotalBytes / GiB, 3),
            ["components"] = components,
        };
    }
}
