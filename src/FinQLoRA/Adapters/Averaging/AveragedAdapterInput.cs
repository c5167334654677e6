using System.Globalization;
using FinQLoRA.Options;

namespace FinQLoRA.Adapters.Averaging;

/// <summary>
/// One adapter to average: <c>NAME=DIR[:WEIGHT]</c> (a plain <c>DIR</c> is named after its folder; the weight is 1
/// unless given). Weights are relative: the average normalises them to sum 1.
/// </summary>
public sealed record AveragedAdapterInput(string Name, string Dir, double Weight)
{
    public static IReadOnlyList<AveragedAdapterInput> ParseAll(IReadOnlyList<string> values)
    {
        if (values.Count < 2)
            throw UserInputException.About($"adapters average: {values.Count} {new ConfigField("adapter")} given; an average needs at least two (NAME=DIR[:WEIGHT], repeated)");
        var inputs = new List<AveragedAdapterInput>();
        foreach (string value in values)
        {
            var input = Parse(value);
            if (inputs.FirstOrDefault(i => i.Name == input.Name) is { } same)
                throw UserInputException.About($"{new ConfigField("adapter")} {value}: the name '{input.Name}' is also given to {same.Dir}; give each adapter its own NAME=");
            inputs.Add(input);
        }
        return inputs;
    }

    /// <summary>Splits at the first '=' (when what precedes it holds no '/') and at the last ':' (unless the text is an
    /// existing folder as it stands); the weight must then be a positive finite number.</summary>
    public static AveragedAdapterInput Parse(string value)
    {
        var (name, rest) = NamedPath.Split(value);
        double weight = 1;
        int colon = rest.LastIndexOf(':');
        if (colon >= 0 && !Directory.Exists(rest))
        {
            string text = rest[(colon + 1)..];
            if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out weight) || !double.IsFinite(weight))
                throw UserInputException.About($"{new ConfigField("adapter")} {value}: the weight '{text}' is not a number; write NAME=DIR:WEIGHT with a positive WEIGHT such as 2 or 0.5");
            if (weight <= 0)
                throw UserInputException.About($"{new ConfigField("adapter")} {value}: the weight {text} is not positive; every adapter needs a weight > 0 (leave an adapter out rather than weigh it 0)");
            rest = rest[..colon];
        }
        string trimmed = rest.TrimEnd('/');
        if (trimmed.Length == 0)
            throw UserInputException.About($"{new ConfigField("adapter")} {value}: no adapter folder; write NAME=DIR[:WEIGHT]");
        name ??= Path.GetFileName(trimmed);
        if (name.Length == 0)
            throw UserInputException.About($"{new ConfigField("adapter")} {value}: empty name before '='; write NAME=DIR[:WEIGHT]");
        return new AveragedAdapterInput(name, rest, weight);
    }

    /// <summary>"'site1' (runs/a/adapter)": how messages name an input.</summary>
    public override string ToString() => $"'{Name}' ({Dir})";
}
