using System.ComponentModel;
using FinQLoRA.Formats.Gguf;
using FinQLoRA.Recipes;
using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

/// <summary><c>finqlora convert --model PATH --to hf|gguf [--dtype f32|f16|bf16|q8_0] --out PATH</c>.</summary>
internal sealed class ConvertCommand : Command<ConvertCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--model <PATH>"), Description("Hugging Face model folder (for --to gguf) or .gguf file (for --to hf)")]
        public string Model { get; init; } = "";

        [CommandOption("--to <FORMAT>"), Description("hf or gguf")]
        public string To { get; init; } = "";

        [CommandOption("--dtype <TYPE>"), Description("f32, f16, bf16 or q8_0 (gguf only); default: as stored")]
        public string? DType { get; init; }

        [CommandOption("--out <PATH>"), Description("output .gguf file or HF folder")]
        public string Out { get; init; } = "";

        [CommandOption("--overwrite"), Description(OutputOptionHelp.Overwrite)]
        public bool Overwrite { get; init; }

        public override Spectre.Console.ValidationResult Validate()
        {
            return RequiredOptions.Missing(("--model", Model), ("--out", Out))
                ?? (To is not ("hf" or "gguf") ? Spectre.Console.ValidationResult.Error("--to must be hf or gguf") : Spectre.Console.ValidationResult.Success());
        }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        string written = ConvertRecipe.Run(new ConvertOptions
        {
            ModelPath = settings.Model, OutPath = settings.Out, To = settings.To, Overwrite = settings.Overwrite,
            DType = settings.DType is { } d ? ModelConverter.ParseDType(d) : null,
        });
        Console.WriteLine($"wrote {written}");
        return 0;
    }
}
