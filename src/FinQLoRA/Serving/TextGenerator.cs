using FinQLoRA.Adapters;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Inference;
using FinQLoRA.Models;

namespace FinQLoRA.Serving;

/// <summary>
/// Generate's and eval's generation in one process, through the one generation loop: each call runs a
/// <see cref="ServingEngine"/> over the model's own layers (<see cref="LocalStepForward"/>) for its prompts
/// (<see cref="EngineGeneration"/>: batch size = the engine's slots, a slot refilled as soon as a row ends). Each
/// prompt is answered with the adapter active on the model when the call starts (<see cref="LoraInjector.ActiveAdapter"/>),
/// or with its own (<see cref="MultiAdapterGenerator"/>). A decode step with one row running takes the managed
/// single-token step where <see cref="Inference.Decoding.ManagedStepSupport"/> covers the model.
/// </summary>
public sealed class TextGenerator(DecoderModel model, ITextTokenizer tokenizer) : IBatchGenerator
{
    public DecoderModel Model => model;
    public ITextTokenizer Tokenizer => tokenizer;

    /// <summary>Let <see cref="Inference.Decoding.DecodeStep.Choose"/> pick the managed single-token step where it
    /// applies; false runs every step through libtorch (benchmarks and tests compare both).</summary>
    public bool ManagedDecodeStep { get; init; } = true;

    /// <summary>How many decode steps ran in managed code (tests check it ran).</summary>
    internal long ManagedSteps { get; private set; }

    public IReadOnlyList<GenerationResult> Generate(IReadOnlyList<string> prompts, GenerationOptions options, int batchSize = 8) =>
        GenerateIds(prompts.Select(p => tokenizer.Encode(p, options.AddBos)).ToList(), options, batchSize);

    public IReadOnlyList<GenerationResult> GenerateIds(IReadOnlyList<int[]> prompts, GenerationOptions options, int batchSize = 8)
    {
        string? active = LoraInjector.ActiveAdapter(model);
        return Generate(prompts, prompts.Select(_ => active).ToList(), options, batchSize);
    }

    /// <summary>Prompt i answered with adapter <paramref name="adapters"/>[i] (null: the base model), loaded in the model.</summary>
    internal IReadOnlyList<GenerationResult> Generate(IReadOnlyList<int[]> prompts, IReadOnlyList<string?> adapters, GenerationOptions options, int batchSize)
    {
        // Every adapter in the model keeps a device index, so the engine moves none of them out of the model.
        var sizes = EngineGeneration.Sizes(prompts, options, batchSize, model.Config) with
        {
            MaxLoras = Math.Max(1, LoraInjector.AdapterNames(model).Count),
        };
        var requests = EngineGeneration.Requests(prompts, options, batchSize, model.Config, sizes, adapters);
        using var engine = new ServingEngine(model, tokenizer, sizes, null, (_, cache) => new LocalStepForward(model, cache, ManagedDecodeStep));
        var results = EngineGeneration.Run(engine, requests);
        ManagedSteps += engine.ManagedSteps;
        return results;
    }
}
