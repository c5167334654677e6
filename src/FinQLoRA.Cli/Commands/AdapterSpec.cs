namespace FinQLoRA.Cli.Commands;

/// <summary>One <c>--adapter</c> value: <c>DIR</c> (named <c>default</c>) or <c>name=DIR</c>; for serve also
/// <c>name=DIR:pin</c> (the adapter never leaves the device).</summary>
public sealed record AdapterSpec(string Name, string Dir, bool Pinned = false)
{
    /// <summary>The suffix that pins a served adapter.</summary>
    public const string PinSuffix = ":pin";

    /// <summary>The name a prompt uses to ask for the base model without any adapter.</summary>
    public const string BaseName = "base";

    public static IReadOnlyList<AdapterSpec> Parse(IEnumerable<string> values, bool allowPin = false)
    {
        var specs = new List<AdapterSpec>();
        foreach (string value in values)
        {
            int eq = value.IndexOf('=');
            // A path may hold '=' too; treat "x=y" as name=DIR only when x looks like a name.
            bool named = eq > 0 && value[..eq].All(ch => char.IsLetterOrDigit(ch) || ch is '_' or '-' or '.') && !Directory.Exists(value);
            var spec = named ? new AdapterSpec(value[..eq], value[(eq + 1)..]) : new AdapterSpec(Adapters.LoraLinear.DefaultAdapter, value);
            // A folder whose own name ends in ":pin" stays a folder.
            if (allowPin && spec.Dir.EndsWith(PinSuffix, StringComparison.Ordinal) && !Directory.Exists(spec.Dir))
                spec = spec with { Dir = spec.Dir[..^PinSuffix.Length], Pinned = true };
            if (spec.Name == BaseName)
                throw new UserInputException($"--adapter {value}: '{BaseName}' is reserved for the base model; choose another name");
            if (spec.Dir == "") throw new UserInputException($"--adapter {value}: no folder after '='; use --adapter name=DIR");
            if (specs.Any(s => s.Name == spec.Name))
                throw new UserInputException($"--adapter {value}: the name '{spec.Name}' is given twice; use --adapter name=DIR with distinct names");
            specs.Add(spec);
        }
        return specs;
    }
}
