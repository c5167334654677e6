using System.Text.RegularExpressions;
using Spectre.Console.Cli;
using Spectre.Console.Cli.Help;

namespace FinQLoRA.Cli.Parsing;

/// <summary>
/// A command line that Spectre's strict parsing refused, said in one line that names what was typed and the nearest
/// option of the command it was given to: <c>finqlora generate: unknown option --tempreture; did you mean
/// --temperature?</c>. Spectre's parse exceptions carry the offending word only in their message (their factories are
/// internal), so the word is read from there; a message of another shape is passed on as it is.
/// </summary>
public static partial class RefusedCommandLine
{
    public static Exception Explain(CommandParseException refused, IReadOnlyList<string> args, CommandCatalog catalog)
    {
        var match = Refusal().Match(refused.Message);
        if (!match.Success) return refused;
        string word = match.Groups["word"].Value;
        var (command, words) = catalog.Find(args);
        string name = string.Join(' ', ["finqlora", .. args.Take(words)]);
        string help = $"(see {name} --help)";
        IReadOnlyList<string> options = [.. CommandCatalog.Options(command), CliApp.VerboseFlag];

        string message = match.Groups["kind"].Value switch
        {
            "Unknown option" or "Unexpected option" => UnknownOption(name, Typed(word, args), options, help),
            _ when command is null or { IsBranch: true } => UnknownCommand(name, word, command, catalog, help),
            _ => $"{name}: unexpected argument '{word}'{Takes(command)}; the closest option is {ClosestName.Find(word, options)} {help}",
        };
        return new UserInputException(message, refused);
    }

    private static string UnknownOption(string name, string typed, IReadOnlyList<string> options, string help) =>
        $"{name}: unknown option {typed}; did you mean {ClosestName.Find(typed, options)}? {help}";

    private static string UnknownCommand(string name, string word, ICommandInfo? branch, CommandCatalog catalog, string help)
    {
        var commands = (branch?.Commands ?? catalog.Model.Commands).Where(c => !c.IsHidden).Select(c => c.Name);
        return $"{name}: unknown command '{word}'; did you mean '{ClosestName.Find(word, commands)}'? {help}";
    }

    /// <summary>What the command does take in place of the stray word: its arguments, or none.</summary>
    private static string Takes(ICommandInfo command)
    {
        var arguments = command.Parameters.OfType<ICommandArgument>().OrderBy(a => a.Position).Select(a => $"<{a.Value}>").ToList();
        return arguments.Count == 0 ? " (it takes options only)" : $" (it takes {string.Join(' ', arguments)} and options)";
    }

    /// <summary>The option as the user spelled it: Spectre reports <c>tempreture</c> for <c>--tempreture=0.5</c> and
    /// <c>x</c> for <c>-x</c>.</summary>
    private static string Typed(string word, IReadOnlyList<string> args) =>
        args.Any(a => a == "--" + word || a.StartsWith("--" + word + "=", StringComparison.Ordinal) || a.StartsWith("--" + word + ":", StringComparison.Ordinal))
            ? "--" + word
            : "-" + word;

    // Spectre's wording: "Unknown option 'x'.", "Unexpected option 'x'." (before any command), "Unknown command 'x'.",
    // "Could not match 'x' with an argument."
    [GeneratedRegex(@"^(?<kind>Unknown option|Unexpected option|Unknown command|Could not match) '(?<word>.*)'")]
    private static partial Regex Refusal();
}
