using System.ComponentModel;
using FinQLoRA.Adapters;
using FinQLoRA.Recipes;
using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

/// <summary><c>finqlora export-adapter --adapter DIR --to gguf --out FILE.gguf [--base PATH]</c>.</summary>
internal sealed class ExportAdapterCommand : Command<ExportAdapterCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--adapter <DIR>"), Description("PEFT LoRA adapter folder (adapter_config.json, adapter_model.safetensors)")]
        public string Adapter { get; init; } = "";

        [CommandOption("--to <FORMAT>"), Description("gguf (llama.cpp LoRA adapter)")]
        public string To { get; init; } = "gguf";

        [CommandOption("--out <FILE>"), Description("output .gguf file")]
        public string Out { get; init; } = "";

        [CommandOption("--overwrite"), Description(OutputOptionHelp.Overwrite)]
        public bool Overwrite { get; init; }

        [CommandOption("--base <PATH>"), Description("base model (HF folder or .gguf); needed when the adapter touches q_proj/k_proj")]
        public string? Base { get; init; }

        public override Spectre.Console.ValidationResult Validate()
        {
            return RequiredOptions.Missing(("--adapter", Adapter), ("--out", Out))
                ?? (To != "gguf" ? Spectre.Console.ValidationResult.Error("--to must be gguf") : Spectre.Console.ValidationResult.Success());
        }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        string written = AdapterExportRecipe.Run(new AdapterExportOptions
        {
            AdapterDir = settings.Adapter, OutPath = settings.Out, To = settings.To, BasePath = settings.Base, Overwrite = settings.Overwrite,
        });
        Console.WriteLine($"wrote {written}");
        return 0;
    }
}
