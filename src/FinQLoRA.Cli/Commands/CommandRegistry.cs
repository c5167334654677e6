using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

/// <summary>Every `finqlora` command, in one place. Each area adds its commands here.</summary>
internal static class CommandRegistry
{
    public static void Register(IConfigurator config)
    {
        config.AddCommand<GenerateCommand>("generate").WithDescription("Generate text from prompts (greedy or sampled), batched with a KV cache.");
        config.AddCommand<TokenizeCommand>("tokenize").WithDescription("Encode text with a model's tokenizer and print the ids.");
        config.AddCommand<VersionCommand>("version").WithDescription("Print versions of finqlora, TorchSharp and libtorch.");
    }
}
