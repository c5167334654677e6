using FinQLoRA.Quantization;
using FinQLoRA.Data.Tasks;
using FinQLoRA.Models;
using FinQLoRA.Loading;

namespace FinQLoRA.Recipes;

/// <summary>One <c>finqlora eval</c>: a model (and optional adapter) scored on FinLoRA tasks, from a data folder of
/// <c>&lt;task&gt;_test.jsonl</c> files or one file for one task. <see cref="Validate"/> checks everything that can be
/// checked before the model loads.</summary>
public sealed record EvaluationRequest(string ModelPath, ModelLoadOptions Load, WeightBits Bits, IReadOnlyList<string> Tasks)
{
    public string? Adapter { get; init; }
    public string? DataDir { get; init; }
    public string? Data { get; init; }
    public int? Limit { get; init; }
    public int BatchSize { get; init; } = 8;
    public string? Out { get; init; }
    public bool Overwrite { get; init; }
    /// <summary>Score classification labels by log-likelihood instead of generating.</summary>
    public bool Choice { get; init; }
    public int PipelineStages { get; init; } = 1;
    public int MicroBatches { get; init; } = 1;
    /// <summary>The model's name in results; default the folder's or file's name.</summary>
    public string? Name { get; init; }

    public string ModelName => Name ?? Path.GetFileName(Path.GetFullPath(ModelPath).TrimEnd('/'));

    public string TestFile(string task) => Data ?? TaskFiles.TestFile(DataDir!, task);

    public void Validate()
    {
        if (Tasks.Count == 0) throw UserInputException.About($"{new ConfigField("tasks")} is required");
        if ((DataDir == null) == (Data == null)) throw UserInputException.About($"give exactly one of {new ConfigField("data_dir")} or {new ConfigField("data")}");
        if (Data != null && Tasks.Count != 1) throw UserInputException.About($"{new ConfigField("data")} holds one task's examples; give exactly one task in {new ConfigField("tasks")}, or use {new ConfigField("data_dir")}");
        if (Choice && PipelineStages > 1) throw UserInputException.About($"{new ConfigField("mode")} choice runs in one process; drop {new ConfigField("pipeline_stages")}");
        foreach (string t in Tasks)
            if (TaskRegistry.Get(t) is { IsClassification: false } task && Choice)
                throw UserInputException.About($"{new ConfigField("mode")} choice scores classification tasks by their labels; {t} is scored by {task.Metric}; evaluate it with {new ConfigField("mode")} generate");
    }
}
