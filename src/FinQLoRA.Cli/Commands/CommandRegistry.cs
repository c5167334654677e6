using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

/// <summary>Every `finqlora` command, in one place. Each area adds its commands here.</summary>
internal static class CommandRegistry
{
    public static void Register(IConfigurator config)
    {
        config.AddCommand<VersionCommand>("version").WithDescription("Print versions of finqlora, TorchSharp and libtorch.");
        config.AddCommand<ConvertCommand>("convert").WithDescription("Convert a Llama model between a Hugging Face folder and GGUF (f32, f16, bf16, q8_0).");
        config.AddCommand<ExportAdapterCommand>("export-adapter").WithDescription("Export a PEFT LoRA adapter as a llama.cpp LoRA GGUF.");
    }
}
