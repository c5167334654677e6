using FinQLoRA.Adapters;

namespace FinQLoRA.Inference;

/// <summary>
/// Serves requests for several adapters loaded side by side on one base: requests are grouped by adapter, each
/// group is generated with that adapter active (<see cref="LoraInjector.SetActiveAdapter"/>), and results come
/// back in request order. The base weights are held once, whatever the number of adapters.
/// </summary>
public static class MultiAdapterGenerator
{
    public static IReadOnlyList<GenerationResult> Generate(TextGenerator generator, IReadOnlyList<GenerationRequest> requests,
        GenerationOptions options, int batchSize = 8)
    {
        var model = generator.Model;
        var loaded = LoraInjector.AdapterNames(model);
        foreach (var r in requests)
            if (r.Adapter is { } name && !loaded.Contains(name))
                throw new UserInputException($"a prompt asks for adapter '{name}', which is not loaded; loaded adapters: {(loaded.Count == 0 ? "none" : string.Join(", ", loaded))}");

        string? before = LoraInjector.ActiveAdapter(model);
        var results = new GenerationResult[requests.Count];
        try
        {
            // Groups in order of first appearance, so output streams in roughly the order the file gives.
            foreach (var group in requests.Select((r, i) => (r, i)).GroupBy(x => x.r.Adapter))
            {
                LoraInjector.SetActiveAdapter(model, group.Key);
                var members = group.ToList();
                var outputs = generator.GenerateIds(members.Select(m => m.r.PromptIds).ToList(), options, batchSize);
                for (int j = 0; j < members.Count; j++) results[members[j].i] = outputs[j];
            }
        }
        finally
        {
            if (loaded.Count > 0) LoraInjector.SetActiveAdapter(model, before);
        }
        return results;
    }
}
