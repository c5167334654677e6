using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

/// <summary>Every `finqlora` command, in one place. Each area adds its commands here.</summary>
internal static class CommandRegistry
{
    public static void Register(IConfigurator config)
    {
        config.AddCommand<VersionCommand>("version").WithDescription("Print versions of finqlora, TorchSharp and libtorch.");
        config.AddCommand<LaunchCommand>("launch").WithDescription("Run a finqlora command on N ranks under mpirun: finqlora launch -n 2 -- <command> <args...>.");
    }
}
