using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

/// <summary>Every `finqlora` command, in one place. Each area adds its commands here.</summary>
internal static class CommandRegistry
{
    public static void Register(IConfigurator config)
    {
        config.AddCommand<VersionCommand>("version").WithDescription("Print versions of finqlora, TorchSharp and libtorch.");
        config.AddBranch("data", data =>
        {
            data.SetDescription("Build and inspect task data sets.");
            data.AddCommand<DataBuildCommand>("build").WithDescription("Build a task's context/target JSONL from its source files.");
            data.AddCommand<DataStatsCommand>("stats").WithDescription("Counts, label distribution and length percentiles of a JSONL file.");
        });
        config.AddCommand<ScoreCommand>("score").WithDescription("Score a predictions JSONL with a task's metric.");
        config.AddCommand<ReportCommand>("report").WithDescription("Join run results into Markdown tables and an accuracy chart.");
    }
}
