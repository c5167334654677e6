using FinQLoRA.Models;
using FinQLoRA.Loading;

namespace FinQLoRA.Inference;

/// <summary>
/// What eval, generate and serve ask for before they generate: a model path and how to load it, adapters to put on it
/// (name and folder), and whether to split the layers over <see cref="PipelineStages"/> MPI ranks.
/// <see cref="Validate"/> runs before anything loads; <c>Serving.GenerationSession.Open</c> loads.
/// </summary>
public sealed record GenerationSetup(string ModelPath, ModelLoadOptions Load)
{
    public IReadOnlyList<(string Name, string Dir)> Adapters { get; init; } = [];
    public int PipelineStages { get; init; } = 1;
    public int MicroBatches { get; init; } = 1;

    /// <summary>The CLI command a message tells the user to rerun under mpirun ("eval", "generate").</summary>
    public string Command { get; init; } = "generate";

    public void Validate()
    {
        if (PipelineStages < 1) throw UserInputException.About($"{new ConfigField("pipeline_stages")} must be at least 1 (got {PipelineStages})");
        if (MicroBatches < 1) throw UserInputException.About($"{new ConfigField("micro_batches")} must be at least 1 (got {MicroBatches})");
        if (PipelineStages > 1 && Adapters.Count > 0)
            throw UserInputException.About($"{new ConfigField("adapter")} is not supported with {new ConfigField("pipeline_stages")} yet; merge the adapter (finqlora merge) and use the merged model");
        foreach (var (name, dir) in Adapters)
            if (!Directory.Exists(dir)) throw UserInputException.About($"{new ConfigField("adapter")} {name}={dir}: adapter folder not found");
    }
}
