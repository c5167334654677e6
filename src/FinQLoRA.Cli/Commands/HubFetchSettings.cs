using System.ComponentModel;
using Spectre.Console;
using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

/// <summary>Options shared by <c>data fetch</c> and <c>model fetch</c>.</summary>
public abstract class HubFetchSettings : CommandSettings
{
    [CommandOption("--out <DIR>")]
    [Description("Folder to place the files in (the repo's layout is kept).")]
    public string? Out { get; init; }

    [CommandOption("--revision <REV>")]
    [Description("Branch, tag or commit. Default: main.")]
    [DefaultValue("main")]
    public string Revision { get; init; } = "main";

    [CommandOption("--include <GLOB>")]
    [Description("Only files matching this pattern (repeatable; * spans folders, data/ means a folder).")]
    public string[] Include { get; init; } = [];

    public override ValidationResult Validate() =>
        string.IsNullOrWhiteSpace(Out) ? ValidationResult.Error("--out DIR is required: the folder to place the files in") : ValidationResult.Success();
}
