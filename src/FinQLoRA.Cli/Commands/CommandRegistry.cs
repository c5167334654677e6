using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

/// <summary>Every `finqlora` command, in one place. Each area adds its commands here.</summary>
internal static class CommandRegistry
{
    public static void Register(IConfigurator config)
    {
        config.AddCommand<VersionCommand>("version").WithDescription("Print versions of finqlora, TorchSharp and libtorch.");
        config.AddCommand<MemoryCommand>("memory").WithDescription("Estimate weight, inference and training memory of a Llama model at 16, 8 or 4 bits.");
    }
}
