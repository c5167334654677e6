using System.ComponentModel;
using FinQLoRA.Cli.Rendering;
using FinQLoRA.Hub;
using Spectre.Console;
using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

/// <summary><c>finqlora data fetch DATASET --out DIR [--revision main] [--include GLOB]... [--to-jsonl]</c></summary>
internal sealed class DataFetchCommand : AsyncCommand<DataFetchCommand.Settings>
{
    public sealed class Settings : HubFetchSettings
    {
        [CommandArgument(0, "<DATASET>")]
        [Description("Dataset repo on the Hub, e.g. FinGPT/fingpt-sentiment-train or takala/financial_phrasebank.")]
        public string Dataset { get; init; } = "";

        [CommandOption("--to-jsonl")]
        [Description("Also write each fetched .parquet file as .jsonl beside it, for the data builders.")]
        public bool ToJsonl { get; init; }
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        HubRepo repo = HubRepo.Create(HubRepoType.Dataset, settings.Dataset, settings.Revision);
        HubFetchResult result = await HubFetchConsole.FetchAsync(repo, settings.Include, settings.Out!, cancellationToken);
        if (!settings.ToJsonl) return 0;

        var parquet = result.Files.Where(f => f.LocalPath.EndsWith(".parquet", StringComparison.OrdinalIgnoreCase)).ToList();
        if (parquet.Count == 0) AnsiConsole.MarkupLine("[yellow]--to-jsonl: no .parquet file among the fetched files[/]");
        foreach (HubFetchedFile file in parquet)
        {
            string jsonl = Path.ChangeExtension(file.LocalPath, ".jsonl");
            long rows = await ParquetToJsonl.ConvertAsync(file.LocalPath, jsonl, cancellationToken);
            AnsiConsole.MarkupLine($"{Markup.Escape(file.File.Path)} -> {Markup.Escape(Path.GetRelativePath(result.OutDirectory, jsonl))} ({rows} rows)");
        }
        return 0;
    }
}
