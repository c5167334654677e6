namespace FinQLoRA.Cli.Commands;

/// <summary>The help text of <c>--overwrite</c>, which every command that writes a model, adapter or file takes
/// (convert, quantize, merge, export-adapter); one text so that the rule reads the same everywhere.</summary>
internal static class OutputOptionHelp
{
    public const string Overwrite = "replace an existing output that FinQLoRA wrote earlier (inputs and other folders are never replaced)";
}
