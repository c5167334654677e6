using System.ComponentModel;
using FinQLoRA.Models;
using Spectre.Console.Cli;
using static TorchSharp.torch;

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

    [CommandOption("--verbose")]
    [Description("print stack traces for errors")]
    public bool Verbose { get; set; }

    public override Spectre.Console.ValidationResult Validate()
    {
        if (string.IsNullOrWhiteSpace(Model)) return Spectre.Console.ValidationResult.Error("--model is required");
        return base.Validate();
    }

    public ModelLoadOptions LoadOptions() => new() { DType = ParseDType(DType), Device = ParseDevice(Device) };

    public static ScalarType ParseDType(string dtype) => dtype.ToLowerInvariant() switch
    {
        "bf16" or "bfloat16" => ScalarType.BFloat16,
        "f32" or "fp32" or "float32" => ScalarType.Float32,
        "f16" or "fp16" or "float16" => ScalarType.Float16,
        _ => throw new UserInputException($"--dtype '{dtype}' is not one of bf16, f32, f16"),
    };

    public static Device ParseDevice(string device)
    {
        string d = device.ToLowerInvariant();
        if (d == "cpu") return CPU;
        if (d == "cuda" || d.StartsWith("cuda:", StringComparison.Ordinal))
        {
            if (!cuda.is_available())
                throw new UserInputException($"--device {device}: CUDA is not available in this build or on this machine; on a machine with an NVIDIA GPU build with -p:TorchDevice=cuda or set FINQLORA_LIBTORCH_DIR to a CUDA libtorch (docs/gpu.md), or use --device cpu");
            return d == "cuda" ? CUDA : new Device(d);
        }
        throw new UserInputException($"--device '{device}' is not one of cpu, cuda, cuda:N");
    }
}
