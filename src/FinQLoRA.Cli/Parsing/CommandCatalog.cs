using Spectre.Console.Cli;
using Spectre.Console.Cli.Help;
using Spectre.Console.Rendering;

namespace FinQLoRA.Cli.Parsing;

/// <summary>
/// What Spectre.Console.Cli makes of a command line, found without running anything: the registered commands
/// (names, options, arguments, subcommands), the command the line names, and the options Spectre did not recognise
/// (its relaxed parsing keeps them aside instead of refusing them). Spectre keeps its parse internal, but hands the
/// command model to the help provider: the line is parsed with <c>--help</c> added, so Spectre stops at help instead
/// of binding and running the command, and the help provider registered for that keeps what it is handed.
/// </summary>
public sealed class CommandCatalog
{
    private CommandCatalog() { }

    public ICommandModel Model { get; private set; } = null!;

    /// <summary>The command the line named; null for the root.</summary>
    public ICommandInfo? Command { get; private set; }

    /// <summary>The options the command does not have, as they were typed (<c>--tempreture</c>, <c>-x</c>), before
    /// any <c>--</c> (what follows it is passed on: <c>launch -n 2 -- train …</c>).</summary>
    public IReadOnlyList<string> UnknownOptions { get; private set; } = [];

    /// <summary>The commands alone.</summary>
    public static CommandCatalog Read() => Parse([]);

    /// <summary>Parses <paramref name="args"/>; a line Spectre refuses throws its <see cref="CommandParseException"/>.</summary>
    public static CommandCatalog Parse(IReadOnlyList<string> args)
    {
        var catalog = new CommandCatalog();
        var own = args.TakeWhile(a => a != "--").ToList();
        var app = new CommandApp();
        app.Configure(config =>
        {
            CliApp.Configure(config);
            config.Settings.Registrar.RegisterInstance(catalog);
            config.SetHelpProvider<Recorder>(); // registered last, so Spectre uses this one
        });
        app.Run([.. own, "--help", .. args.Skip(own.Count)]);
        catalog.UnknownOptions = [.. catalog.UnknownOptions.Where(key => own.Any(a => Spells(a, key)))];
        return catalog;
    }

    /// <summary>The help provider of a parse: Spectre creates it with the line's remaining arguments.</summary>
    private sealed class Recorder(IRemainingArguments remaining, CommandCatalog catalog) : IHelpProvider
    {
        public IEnumerable<IRenderable> Write(ICommandModel model, ICommandInfo? command)
        {
            (catalog.Model, catalog.Command) = (model, command);
            catalog.UnknownOptions = [.. remaining.Parsed.Select(option => option.Key)];
            return [];
        }
    }

    /// <summary>Whether the word <paramref name="arg"/> gives the option <paramref name="key"/>: <c>--x</c>,
    /// <c>--x=v</c>, <c>--x:v</c>, or <c>-x</c> alone or grouped (<c>-ax</c>).</summary>
    private static bool Spells(string arg, string key) =>
        arg == key || arg.StartsWith(key + "=", StringComparison.Ordinal) || arg.StartsWith(key + ":", StringComparison.Ordinal)
        || (key.Length == 2 && arg.Length > 1 && arg[0] == '-' && arg[1] != '-' && arg.TakeWhile(c => c is not ('=' or ':')).Contains(key[1]));

    /// <summary>Every visible command and branch as the words that name it: <c>train</c>, <c>data</c>, <c>data stats</c>.</summary>
    public IReadOnlyList<string[]> Paths()
    {
        var paths = new List<string[]>();
        void Walk(ICommandContainer container, string[] prefix)
        {
            foreach (var command in container.Commands.Where(c => !c.IsHidden))
            {
                string[] path = [.. prefix, command.Name];
                paths.Add(path);
                Walk(command, path);
            }
        }
        Walk(Model, []);
        return paths;
    }

    /// <summary>The command that the leading words of <paramref name="args"/> name (null: none, the root).</summary>
    public ICommandInfo? Find(IReadOnlyList<string> args)
    {
        ICommandInfo? found = null;
        foreach (string word in args)
        {
            var next = (found?.Commands ?? Model.Commands).FirstOrDefault(c => c.Name == word);
            if (next == null) break;
            found = next;
        }
        return found;
    }

    /// <summary>The command's name as typed: <c>finqlora data stats</c>.</summary>
    public static string Name(ICommandInfo? command) =>
        command == null ? "finqlora" : $"{Name(command.Parent)} {command.Name}";

    /// <summary>The long options of <paramref name="command"/> (<c>--temperature</c>), its short-only ones
    /// (<c>-n</c>), and <c>--help</c>.</summary>
    public static IReadOnlyList<string> Options(ICommandInfo? command) =>
        [.. (command?.Parameters ?? []).OfType<ICommandOption>().Where(o => !o.IsHidden)
            .Select(o => o.LongNames.Count > 0 ? "--" + o.LongNames[0] : "-" + o.ShortNames[0]), "--help"];
}
