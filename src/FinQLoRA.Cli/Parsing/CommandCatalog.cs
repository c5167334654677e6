using Spectre.Console.Cli;
using Spectre.Console.Cli.Help;
using Spectre.Console.Rendering;

namespace FinQLoRA.Cli.Parsing;

/// <summary>
/// The registered commands as Spectre.Console.Cli models them (names, options, arguments, subcommands): to explain a
/// refused command line with the options of the command it named, and for tests that walk every command. Spectre
/// keeps its model internal but hands it to the help provider, so the catalog registers itself as one that keeps the
/// model instead of rendering help, and asks for the root help once.
/// </summary>
public sealed class CommandCatalog : IHelpProvider
{
    private ICommandModel? _model;

    private CommandCatalog() { }

    public static CommandCatalog Read()
    {
        var catalog = new CommandCatalog();
        var app = new CommandApp();
        app.Configure(config =>
        {
            CliApp.Configure(config);
            config.SetHelpProvider(catalog); // registered last, so Spectre uses this one
        });
        app.Run(["--help"]);
        return catalog;
    }

    IEnumerable<IRenderable> IHelpProvider.Write(ICommandModel model, ICommandInfo? command)
    {
        _model = model;
        return [];
    }

    public ICommandModel Model => _model ?? throw new InvalidOperationException("Spectre did not ask for the root help");

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

    /// <summary>The command that the leading words of <paramref name="args"/> name (null: none, the root), and how
    /// many words named it.</summary>
    public (ICommandInfo? Command, int Words) Find(IReadOnlyList<string> args)
    {
        ICommandInfo? found = null;
        int words = 0;
        while (words < args.Count)
        {
            IEnumerable<ICommandInfo> children = found?.Commands ?? Model.Commands;
            var next = children.FirstOrDefault(c => c.Name == args[words]);
            if (next == null) break;
            found = next;
            words++;
        }
        return (found, words);
    }

    /// <summary>The long options of <paramref name="command"/> (<c>--temperature</c>), its short-only ones
    /// (<c>-n</c>), and <c>--help</c>.</summary>
    public static IReadOnlyList<string> Options(ICommandInfo? command) =>
        [.. (command?.Parameters ?? []).OfType<ICommandOption>().Where(o => !o.IsHidden)
            .Select(o => o.LongNames.Count > 0 ? "--" + o.LongNames[0] : "-" + o.ShortNames[0]), "--help"];
}
