using System.ComponentModel;
using FinQLoRA.Models;
using FinQLoRA.Runtime;
using Spectre.Console.Cli;
using FinQLoRA.Loading;

namespace FinQLoRA.Cli.Commands;

/// <summary>Options shared by every command that loads a model.</summary>
public class ModelSettings : CommandSettings
{
    [CommandOption("--model <PATH>")]
    [Description("Hugging Face model folder (config.json + safetensors + tokenizer.json) or a .gguf file")]
    public string Model { get; set; } = "";

    [CommandOption("--device <DEVICE>")]
    [Description("cpu, cuda or cuda:N")]
    [DefaultValue("cpu")]
    public string Device { get; set; } = "cpu";

    [CommandOption("--dtype <DTYPE>")]
    [Description("compute dtype: bf16, f32 or f16 (f16 only where the device supports it)")]
    [DefaultValue("bf16")]
    public string DType { get; set; } = "bf16";

    public override Spectre.Console.ValidationResult Validate()
    {
        if (string.IsNullOrWhiteSpace(Model)) return Spectre.Console.ValidationResult.Error("--model is required");
        return base.Validate();
    }

    public ModelLoadOptions LoadOptions() => new() { DType = ComputeDtypes.Spellings.Parse(DType, "dtype"), Device = ComputeDevice.Parse(Device).ToTorch() };
}
