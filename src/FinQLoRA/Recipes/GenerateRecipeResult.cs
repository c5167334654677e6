using FinQLoRA.Inference;

namespace FinQLoRA.Recipes;

/// <param name="IsMain">false on the pipeline ranks that only took part (they get no outputs)</param>
/// <param name="Outputs">one per prompt, in order, on the main rank</param>
/// <param name="Adapters">the adapter that answered each prompt (null = the base); null when no adapter was loaded</param>
public sealed record GenerateRecipeResult(bool IsMain, IReadOnlyList<GenerationResult> Outputs, IReadOnlyList<string?>? Adapters);
