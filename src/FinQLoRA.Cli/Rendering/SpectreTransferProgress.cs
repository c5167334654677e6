using FinQLoRA.Hub;
using Spectre.Console;

namespace FinQLoRA.Cli.Rendering;

/// <summary>Draws one progress bar per file (bytes, bytes/s, ETA) from the Hub client's events.</summary>
internal sealed class SpectreTransferProgress(ProgressContext context) : IHubTransferObserver
{
    private readonly Dictionary<string, ProgressTask> _tasks = new(StringComparer.Ordinal);

    public void FileStarted(HubFile file, long bytesAlreadyPresent)
    {
        ProgressTask task = Task(file);
        task.Value = bytesAlreadyPresent;
        if (bytesAlreadyPresent > 0) task.Description = $"{Markup.Escape(file.Path)} [grey](resuming)[/]";
    }

    public void BytesOnDisk(HubFile file, long bytesOnDisk) => Task(file).Value = bytesOnDisk;

    public void FileFinished(HubFile file, bool fromCache)
    {
        ProgressTask task = Task(file);
        task.Description = Markup.Escape(file.Path) + (fromCache ? " [grey](cached)[/]" : "");
        task.Value = task.MaxValue;
        task.StopTask();
    }

    public void Retrying(string what, int failures, TimeSpan delay, string reason) =>
        AnsiConsole.MarkupLine($"[yellow]retry {failures}[/] {Markup.Escape(what)} in {delay.TotalSeconds:F0}s: {Markup.Escape(reason)}");

    private ProgressTask Task(HubFile file)
    {
        if (!_tasks.TryGetValue(file.Path, out ProgressTask? task))
        {
            // A zero-byte file still needs a non-zero maximum for the bar to show it complete.
            task = context.AddTask(Markup.Escape(file.Path), maxValue: Math.Max(1, file.Size));
            _tasks[file.Path] = task;
        }
        return task;
    }
}
