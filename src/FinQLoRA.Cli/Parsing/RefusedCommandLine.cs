using System.Text.RegularExpressions;
using Spectre.Console.Cli;
using Spectre.Console.Cli.Help;

namespace FinQLoRA.Cli.Parsing;

/// <summary>
/// Refuses a command line before any work when it holds an option the command does not have or a word it does not
/// take, in one line that names what was typed and the nearest option (or command):
/// <c>finqlora generate: unknown option --tempreture; did you mean --temperature? (see finqlora generate --help)</c>.
/// </summary>
internal static partial class RefusedCommandLine
{
    public static void Check(IReadOnlyList<string> args)
    {
        CommandCatalog line;
        try { line = CommandCatalog.Parse(args); }
        catch (CommandParseException refused) { throw Explain(refused, args); }
        if (line.UnknownOptions.Count > 0)
        {
            string typed = line.UnknownOptions[0];
            throw new UserInputException($"{CommandCatalog.Name(line.Command)}: unknown option {typed}; did you mean {ClosestName.Find(typed, Options(line.Command))}? {Help(line.Command)}");
        }
    }

    /// <summary>What Spectre's parsing refused, with the command's nearest option or subcommand. Its parse exceptions
    /// carry the offending word only in their message (their factories are internal), so the word is read from
    /// there; a message of another shape is passed on as it is.</summary>
    private static Exception Explain(CommandParseException refused, IReadOnlyList<string> args)
    {
        var match = Refusal().Match(refused.Message);
        if (!match.Success) return refused;
        string word = match.Groups["word"].Value;
        var catalog = CommandCatalog.Read();
        var command = catalog.Find(args);
        string name = CommandCatalog.Name(command);
        if (match.Groups["kind"].Value == "Unexpected option")
        {
            string typed = word.Length == 1 ? "-" + word : "--" + word;
            return new UserInputException($"{name}: unknown option {typed}; did you mean {ClosestName.Find(typed, Options(command))}? {Help(command)}", refused);
        }
        if (command is null or { IsBranch: true })
        {
            var commands = (command?.Commands ?? catalog.Model.Commands).Where(c => !c.IsHidden).Select(c => c.Name);
            return new UserInputException($"{name}: unknown command '{word}'; did you mean '{ClosestName.Find(word, commands)}'? {Help(command)}", refused);
        }
        return new UserInputException($"{name}: unexpected argument '{word}'{Takes(command)}; the closest option is {ClosestName.Find(word, Options(command))} {Help(command)}", refused);
    }

    private static string Help(ICommandInfo? command) => $"(see {CommandCatalog.Name(command)} --help)";

    private static IReadOnlyList<string> Options(ICommandInfo? command) => [.. CommandCatalog.Options(command), CliApp.VerboseFlag];

    /// <summary>What the command does take in place of the stray word: its arguments, or none.</summary>
    private static string Takes(ICommandInfo command)
    {
        var arguments = command.Parameters.OfType<ICommandArgument>().OrderBy(a => a.Position).Select(a => $"<{a.Value}>").ToList();
        return arguments.Count == 0 ? " (it takes options only)" : $" (it takes {string.Join(' ', arguments)} and options)";
    }

    // Spectre's wording: "Unexpected option 'x'." (an option before any command), "Unknown command 'x'." (also a stray
    // word after a command without arguments), "Could not match 'x' with an argument."
    [GeneratedRegex(@"^(?<kind>Unexpected option|Unknown command|Could not match) '(?<word>.*)'")]
    private static partial Regex Refusal();
}
