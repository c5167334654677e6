namespace FinQLoRA.Data.Tasks;

/// <summary>
/// Builds a task's prompt/answer examples from its source files: read each source (raw format, or FinLoRA
/// JSONL which passes through), keep the requested side for tasks that partition by seed, then drop every
/// example whose normalised input text (<see cref="InputText"/>) occurs in an exclude file, e.g. the
/// reference test set when building training data from a superset of it.
/// </summary>
public static class TaskDataBuilder
{
    public static TaskBuildResult Build(string task, IReadOnlyList<string> sources, DataSplit split, IReadOnlyList<string> excludeFiles, int seed) =>
        Build(TaskRegistry.Get(task), sources, split, excludeFiles, seed);

    public static TaskBuildResult Build(TaskDefinition task, IReadOnlyList<string> sources, DataSplit split, IReadOnlyList<string> excludeFiles, int seed)
    {
        if (sources.Count == 0) throw UserInputException.About($"{task.Name}: no {new ConfigField("source")} given; expected {task.Sources}");
        RefuseExcludingASource(sources, excludeFiles);
        var context = new SourceContext(task, split, seed);
        var examples = new List<Example>();
        foreach (string path in sources)
        {
            ITaskSource source = path.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase)
                ? new FinLoraJsonlSource()
                : task.Source ?? throw new UserInputException($"{path}: task {task.Name} reads only FinLoRA JSONL files ({task.Sources})");
            examples.AddRange(source.Read(path, context));
        }

        if (task.HeldOutFraction is double fraction)
        {
            var (train, test) = TaskSplitter.Split(examples, fraction, seed);
            examples = (split == DataSplit.Test ? test : train).ToList();
        }

        if (excludeFiles.Count == 0) return new TaskBuildResult(examples, 0);
        var excluded = InputText.SetOf(excludeFiles);
        var kept = examples.Where(e => !excluded.Contains(InputText.Of(e))).ToList();
        // An output with nothing left is never what was meant (a copy of the source passed as --exclude, or the
        // test set passed as --source): refuse it rather than write an empty training file that fails much later.
        if (kept.Count == 0 && examples.Count > 0)
            throw UserInputException.About($"every one of the {examples.Count} {task.Name} examples of {string.Join(", ", sources)} occurs in {new ConfigField("exclude")} {string.Join(", ", excludeFiles)}, so nothing is left; {new ConfigField("exclude")} takes the held-out test set, not the source");
        return new TaskBuildResult(kept, examples.Count - kept.Count);
    }

    /// <summary>A source excluded from itself leaves nothing: compared as real paths, so a symlink or "./x" counts too.</summary>
    private static void RefuseExcludingASource(IReadOnlyList<string> sources, IReadOnlyList<string> excludeFiles)
    {
        foreach (string exclude in excludeFiles)
            foreach (string source in sources)
                if (RealPath(exclude) == RealPath(source))
                    throw UserInputException.About($"{new ConfigField("exclude")} {exclude} is the same file as {new ConfigField("source")} {source}; excluding a source from itself leaves no examples — pass the held-out test set to {new ConfigField("exclude")}");
    }

    private static string RealPath(string path)
    {
        string full = Path.GetFullPath(path);
        return File.Exists(full) && new FileInfo(full).ResolveLinkTarget(returnFinalTarget: true) is { } target ? target.FullName : full;
    }
}
