using System.ComponentModel;
using FinQLoRA.Runtime;
using Spectre.Console;
using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

/// <summary>What every <c>finqlora debug dump-*</c> takes beside the model and quantization flags: the output file
/// (a record goes beside it as FILE.json) and --overwrite; --device is checked here, before anything loads.</summary>
public class DebugDumpSettings : QuantizedModelSettings
{
    [CommandOption("--out <FILE>")]
    [Description("the safetensors file to write (its record, FILE.json, goes beside it)")]
    public string Out { get; set; } = "";

    [CommandOption("--overwrite")]
    [Description(OutputOptionHelp.Overwrite)]
    public bool Overwrite { get; set; }

    public override ValidationResult Validate() =>
        RequiredOptions.Missing(("--model", Model), ("--out", Out))
        ?? (FlagNames.Check(() => ComputeDevice.Parse(Device)) is { Successful: false } bad ? bad : base.Validate());
}
