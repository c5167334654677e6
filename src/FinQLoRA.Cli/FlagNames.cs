using FinQLoRA.Options;
using Spectre.Console;

namespace FinQLoRA.Cli;

/// <summary>
/// The one place the CLI turns the library's config field names into flags: a field is its kebab-case flag
/// (<c>max_new_tokens</c> → <c>--max-new-tokens</c>), as the train keys are, so the library's messages
/// (<see cref="UserInputException.About"/>) read with the flag the user typed.
/// </summary>
public static class FlagNames
{
    public static string For(string field) => "--" + SnakeCase.ToKebab(field);

    /// <summary>A user error's message as the CLI prints it: every field the library named, as its flag.</summary>
    public static string Render(UserInputException e) => e.Render(For);

    /// <summary>Runs a library check from a settings class's <c>Validate</c>: its refusal becomes the validation error,
    /// with flags for fields.</summary>
    public static ValidationResult Check(Action check)
    {
        try { check(); }
        catch (UserInputException e) { return ValidationResult.Error(Render(e)); }
        return ValidationResult.Success();
    }
}
