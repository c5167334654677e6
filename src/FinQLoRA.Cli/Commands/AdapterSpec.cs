namespace FinQLoRA.Cli.Commands;

/// <summary>One <c>--adapter</c> value: <c>DIR</c> (named <c>default</c>) or <c>name=DIR</c>.</summary>
public sealed record AdapterSpec(string Name, string Dir)
{
    /// <summary>The name a prompt uses to ask for the base model without any adapter.</summary>
    public const string BaseName = "base";

    public static IReadOnlyList<AdapterSpec> Parse(IEnumerable<string> values)
    {
        var specs = new List<AdapterSpec>();
        foreach (string value in values)
        {
            int eq = value.IndexOf('=');
            // A path may hold '=' too; treat "x=y" as name=DIR only when x looks like a name.
            bool named = eq > 0 && value[..eq].All(ch => char.IsLetterOrDigit(ch) || ch is '_' or '-' or '.') && !Directory.Exists(value);
            var spec = named ? new AdapterSpec(value[..eq], value[(eq + 1)..]) : new AdapterSpec(Adapters.LoraLinear.DefaultAdapter, value);
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
