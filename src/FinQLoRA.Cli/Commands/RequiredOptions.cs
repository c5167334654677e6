using Spectre.Console;

namespace FinQLoRA.Cli.Commands;

/// <summary>The first check of a command whose options have no default: the first one left empty, named as
/// <c>--model is required</c>.</summary>
internal static class RequiredOptions
{
    /// <returns>the error for the first empty option, in the order given; null when all are given</returns>
    public static ValidationResult? Missing(params (string Flag, string Value)[] options)
    {
        foreach (var (flag, value) in options)
            if (value == "") return ValidationResult.Error($"{flag} is required");
        return null;
    }
}
