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
        if (sources.Count == 0) throw new UserInputException($"{task.Name}: no --source given; expected {task.Sources}");
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
        return new TaskBuildResult(kept, examples.Count - kept.Count);
    }
}
