using FinQLoRA.Inference;
using FinQLoRA.Models;
using FinQLoRA.Loading;

namespace FinQLoRA.Recipes;

/// <summary>What <c>finqlora generate</c> does: continue each prompt with the model at <see cref="ModelPath"/>
/// (adapters per prompt, or the model's layers split over <see cref="PipelineStages"/> MPI ranks).</summary>
public sealed record GenerateRecipeOptions
{
    public required string ModelPath { get; init; }
    public required ModelLoadOptions Load { get; init; }
    public required IReadOnlyList<GenerateRecipePrompt> Prompts { get; init; }
    public GenerationOptions Generation { get; init; } = new();
    /// <summary>Adapters loaded side by side (name, folder); a prompt picks one by name.</summary>
    public IReadOnlyList<(string Name, string Dir)> Adapters { get; init; } = [];
    public int BatchSize { get; init; } = 8;
    public int PipelineStages { get; init; } = 1;
    public int MicroBatches { get; init; } = 1;
    /// <summary>Wrap each prompt in the Llama 3 chat template as a user message.</summary>
    public bool Chat { get; init; }
}
