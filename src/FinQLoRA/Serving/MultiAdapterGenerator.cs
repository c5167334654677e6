using FinQLoRA.Adapters;
using FinQLoRA.Inference;

namespace FinQLoRA.Serving;

/// <summary>
/// Requests for several adapters loaded side by side on one base, answered in one engine run: each row applies its
/// own adapter (the engine's stacked adapters), so prompts for different adapters share a batch, and results come back
/// in request order. The base weights are held once, whatever the number of adapters.
/// </summary>
public static class MultiAdapterGenerator
{
    public static IReadOnlyList<GenerationResult> Generate(TextGenerator generator, IReadOnlyList<GenerationRequest> requests,
        GenerationOptions options, int batchSize = 8)
    {
        var loaded = LoraInjector.AdapterNames(generator.Model);
        foreach (var r in requests)
            if (r.Adapter is { } name && !loaded.Contains(name))
                throw new UserInputException($"a prompt asks for adapter '{name}', which is not loaded; loaded adapters: {(loaded.Count == 0 ? "none" : string.Join(", ", loaded))}");
        return generator.Generate(requests.Select(r => r.PromptIds).ToList(), requests.Select(r => r.Adapter).ToList(), options, batchSize);
    }
}
