using System.Globalization;
using FinQLoRA.Options;

namespace FinQLoRA.Training;

/// <summary>
/// One training source of a task-family run: <c>NAME=FILE[:WEIGHT]</c> (<c>--data</c> repeated, or a YAML list).
/// A plain <c>FILE</c> is named after the file and weighs 1.
/// </summary>
public sealed record DataSource(string Name, string File, double Weight)
{
    /// <summary>Several sources travel in one config value, one per line (paths hold no newlines).</summary>
    public const char Separator = '\n';

    public static IReadOnlyList<DataSource> ParseAll(string value, string source) =>
        value.Split(Separator, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(v => Parse(v, source)).ToList();

    public static DataSource Parse(string value, string source)
    {
        var (name, rest) = NamedPath.Split(value);
        double weight = 1;
        int colon = rest.LastIndexOf(':');
        if (colon > 0 && double.TryParse(rest[(colon + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out double w))
            (rest, weight) = (rest[..colon], w);
        name ??= Path.GetFileNameWithoutExtension(rest);
        if (!(weight > 0 && double.IsFinite(weight)))
            throw new UserInputException($"{source}: data = {value}: the weight must be a positive number (NAME=FILE:WEIGHT)");
        if (name.Length == 0 || rest.Length == 0)
            throw new UserInputException($"{source}: data = {value}: expected FILE or NAME=FILE[:WEIGHT]");
        return new DataSource(name, rest, weight);
    }

    /// <summary>
    /// The examples of one epoch of a mixed run: each source contributes its share of the total by weight
    /// (round(N·wᵢ/Σw), N = all examples), drawn from a seeded permutation of it and cycled when it needs more
    /// than it has — how FinLoRA's family adapters (sentiment = FPB + FiQA + TFNS + NWGI) see their sources.
    /// </summary>
    public static List<T> Mix<T>(IReadOnlyList<(DataSource Source, List<T> Items)> sources, long seed)
    {
        if (sources.Count == 1) return sources[0].Items;
        int total = sources.Sum(s => s.Items.Count);
        double weights = sources.Sum(s => s.Source.Weight);
        var mixed = new List<T>();
        var random = new Random(unchecked((int)seed));
        foreach (var (src, items) in sources)
        {
            if (items.Count == 0) continue;
            int take = (int)Math.Round(total * src.Weight / weights);
            var order = Enumerable.Range(0, items.Count).ToArray();
            random.Shuffle(order);
            for (int i = 0; i < take; i++) mixed.Add(items[order[i % order.Length]]);
        }
        return mixed;
    }
}
