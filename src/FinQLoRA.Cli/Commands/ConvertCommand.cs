using System.ComponentModel;
using FinQLoRA.Models.Gguf;
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

        [CommandOption("--overwrite"), Description("replace an existing output that FinQLoRA wrote earlier (inputs and other folders are never replaced)")]
        public bool Overwrite { get; init; }

        public override Spectre.Console.ValidationResult Validate()
        {
            if (Model == "") return Spectre.Console.ValidationResult.Error("--model is required");
            if (Out == "") return Spectre.Console.ValidationResult.Error("--out is required");
            if (To is not ("hf" or "gguf")) return Spectre.Console.ValidationResult.Error("--to must be hf or gguf");
            return Spectre.Console.ValidationResult.Success();
        }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        GgmlType? dtype = settings.DType is { } d ? ModelConverter.ParseDType(d) : null;
        if (settings.To == "gguf")
        {
            if (!Directory.Exists(settings.Model))
                throw new UserInputException($"--model {settings.Model}: --to gguf converts a Hugging Face model folder");
            ModelConverter.HfToGguf(settings.Model, settings.Out, dtype, settings.Overwrite);
        }
        else
        {
            if (!File.Exists(settings.Model))
                throw new UserInputException($"--model {settings.Model}: --to hf converts a .gguf file");
            ModelConverter.GgufToHf(settings.Model, settings.Out, dtype, settings.Overwrite);
        }
        Console.WriteLine($"wrote {settings.Out}");
        return 0;
    }
}
