using FinQLoRA.Hub;
using Spectre.Console;

namespace FinQLoRA.Cli.Rendering;

/// <summary>Runs <see cref="HubClient.FetchAsync"/> under a Spectre progress display and prints a summary.</summary>
internal static class HubFetchConsole
{
    public static async Task<HubFetchResult> FetchAsync(HubRepo repo, IReadOnlyList<string> include, string outDirectory, CancellationToken cancellation)
    {
        // Fetching again into its own folder completes or updates it; a folder of anybody else's files is refused,
        // since files of the repo would replace theirs of the same name.
        FinQLoRA.IO.OutputPlacement.CheckFolder(outDirectory, [], overwrite: true);
        Directory.CreateDirectory(outDirectory);
        if (!FinQLoRA.IO.OutputMarker.IsMarked(outDirectory)) FinQLoRA.IO.OutputMarker.Write(outDirectory, $"hub fetch of {repo}");
        HubSettings settings = HubSettings.FromEnvironment();
        using var client = new HubClient(settings);
        AnsiConsole.MarkupLine($"fetching {Markup.Escape(repo.ToString())} from {Markup.Escape(settings.Endpoint.AbsoluteUri)} (cache {Markup.Escape(settings.CacheRoot)})");

        HubFetchResult result = await ConsoleStreams.Progress.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                     new DownloadedColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
            .StartAsync(context => client.FetchAsync(repo, include, outDirectory, new SpectreTransferProgress(context), cancellation));

        AnsiConsole.MarkupLine($"{result.Files.Count} files ({FormatBytes(result.TotalBytes)}) in {Markup.Escape(result.OutDirectory)}: {result.DownloadedCount} downloaded, {result.CachedCount} from cache");
        return result;
    }

    public static string FormatBytes(long bytes) => bytes switch
    {
        >= 1L << 30 => $"{bytes / (double)(1L << 30):F2} GiB",
        >= 1L << 20 => $"{bytes / (double)(1L << 20):F1} MiB",
        >= 1L << 10 => $"{bytes / 1024.0:F1} KiB",
        _ => $"{bytes} B",
    };
}
