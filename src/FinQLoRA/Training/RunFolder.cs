using System.Globalization;
using System.Text.RegularExpressions;
using FinQLoRA.IO;

namespace FinQLoRA.Training;

/// <summary>
/// The output folder of a training run, checked and claimed before the model loads: it is never an input (model,
/// data, config) nor inside one; a folder with someone else's files is refused; an existing run continues only with
/// <c>--resume</c>, and <c>--resume</c> with nothing to resume says so. The main rank holds <see cref="FolderLock"/> for
/// the whole run, and leftovers of killed runs (half-written checkpoint folders, temp files) are cleared away.
/// </summary>
public sealed partial class RunFolder : IDisposable
{
    private readonly FolderLock? _lock;

    public string Folder { get; }

    private RunFolder(string path, FolderLock? folderLock) => (Folder, _lock) = (path, folderLock);

    /// <summary>Checks, before anything loads, that <see cref="TrainConfig.Out"/> may hold this run. Writes nothing.</summary>
    public static void Check(TrainConfig config)
    {
        string outDir = config.Out;
        OutputPlacementForRun(config);
        bool hasRun = HoldsRun(outDir);
        if (!hasRun && !OutputMarker.IsEmptyOrMissing(outDir) && !OutputMarker.IsMarked(outDir))
            throw new UserInputException($"out = {outDir}: the folder is not empty and holds files FinQLoRA did not write; choose a new or empty folder");
        bool hasCheckpoint = TrainingCheckpoint.List(outDir).Count > 0;
        if (config.Resume && !hasCheckpoint)
            throw hasRun
                ? UserInputException.About($"resume: {outDir} has no complete checkpoint to resume from; drop {new ConfigField("resume")} to start a new run in another {new ConfigField("out")}")
                : UserInputException.About($"resume: {outDir} has no complete checkpoint to resume from; drop {new ConfigField("resume")} to start a new run");
        if (!config.Resume && hasRun)
            throw hasCheckpoint
                ? UserInputException.About($"{outDir} already holds checkpoints; pass {new ConfigField("resume")} to continue that run, or choose another {new ConfigField("out")}")
                : UserInputException.About($"{outDir} already holds a finished training run; choose another {new ConfigField("out")}");
    }

    /// <summary>Claims the folder for the run: on the writing rank takes the lock, marks the folder and clears what
    /// killed runs left behind. Call after <see cref="Check"/>.</summary>
    public static RunFolder Claim(TrainConfig config, bool writer)
    {
        if (!writer) return new RunFolder(config.Out, null);
        var folderLock = FolderLock.Acquire(config.Out);
        try
        {
            RemoveLeftovers(config.Out);
            if (!OutputMarker.IsMarked(config.Out)) OutputMarker.Write(config.Out, "training run");
            return new RunFolder(config.Out, folderLock);
        }
        catch
        {
            folderLock.Dispose();
            throw;
        }
    }

    /// <summary>A run worth keeping: a checkpoint or a final adapter. A folder with only the marker, a log and a plot
    /// (a run stopped before its first checkpoint) is started over.</summary>
    private static bool HoldsRun(string outDir) =>
        TrainingCheckpoint.List(outDir).Count > 0 || Directory.Exists(Path.Combine(outDir, "adapter"));

    private static void OutputPlacementForRun(TrainConfig c)
    {
        if (File.Exists(c.Out)) throw new UserInputException($"out = {c.Out}: is a file; give a folder path");
        // What the folder may already hold is the run's own rule (Open); the input and writability rules are the shared ones.
        OutputPlacement.CheckInputsAndWritable(c.Out, [c.Model, c.EvalData, .. c.DataSources.Select(s => s.File)]);
    }

    [GeneratedRegex(@"^(?<name>.+)\.(?<pid>\d+)\.(?:[0-9a-f]{32}\.)?(?<kind>tmp|old)$")]
    private static partial Regex Leftover();

    /// <summary>
    /// Removes what killed processes left half-done: <c>NAME.PID.tmp</c> folders and files (an unfinished write) and
    /// <c>loss.png.tmp.png</c>. A <c>NAME.PID.old</c> folder is the previous version of NAME set aside during a swap:
    /// dropped when NAME is complete, renamed back when the kill came before NAME was put in place. Entries of live
    /// processes are left alone.
    /// </summary>
    internal static List<string> RemoveLeftovers(string outDir)
    {
        var removed = new List<string>();
        if (!Directory.Exists(outDir)) return removed;
        foreach (string entry in Directory.EnumerateFileSystemEntries(outDir).ToList())
        {
            string name = Path.GetFileName(entry);
            if (name == "loss.png.tmp.png") { File.Delete(entry); removed.Add(entry); continue; }
            var m = Leftover().Match(name);
            if (!m.Success) continue;
            int pid = int.Parse(m.Groups["pid"].Value, CultureInfo.InvariantCulture);
            if (pid == Environment.ProcessId || FolderLock.IsAlive(pid.ToString(CultureInfo.InvariantCulture))) continue;
            string target = Path.Combine(outDir, m.Groups["name"].Value);
            if (m.Groups["kind"].Value == "old" && !Path.Exists(target)) { Directory.Move(entry, target); continue; }
            if (Directory.Exists(entry)) Directory.Delete(entry, recursive: true); else File.Delete(entry);
            removed.Add(entry);
        }
        return removed;
    }

    public void Dispose() => _lock?.Dispose();
}
