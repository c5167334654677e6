using FinQLoRA.Data.Tokenization;
using FinQLoRA.Distributed;
using FinQLoRA.Inference;
using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Serving.Pipeline;

/// <summary>
/// Generate and eval over pipeline stages, through the one generation loop: each call runs the serving engine for its
/// prompts, on rank 0 over <see cref="PipelineStepForward"/> (the scheduler, the head and sampling here; every step's
/// layers through the stages, its rows cut into up to <c>micro_batches</c> runs that follow each other through the
/// stages), while ranks 1..N−1 run a <see cref="PipelineStageWorker"/> until rank 0's engine stops. Collective: every
/// rank calls it; rank 0's prompts and options count (the others pass an empty list), and rank 0 alone gets results.
/// A call rank 0 refuses (bad options or prompts) stops the other ranks too, with a line that says so.
/// </summary>
public sealed class PipelineGenerator : IBatchGenerator
{
    private readonly DecoderModel _model;
    private readonly ICommunicator _comm;

    /// <param name="stageModel">this rank's stage (<see cref="PipelineServingStage.Load"/>: the head on rank 0)</param>
    public PipelineGenerator(DecoderModel stageModel, ICommunicator comm, ITextTokenizer tokenizer)
    {
        if (comm.Size < 2) throw new ArgumentException("a pipeline needs at least 2 ranks; one process generates with TextGenerator", nameof(comm));
        _model = stageModel;
        _comm = comm;
        Tokenizer = tokenizer;
    }

    public ITextTokenizer Tokenizer { get; }

    /// <summary>Micro-batches per step when called through <see cref="IBatchGenerator"/>.</summary>
    public int MicroBatches { get; init; } = 1;

    IReadOnlyList<GenerationResult> IBatchGenerator.Generate(IReadOnlyList<string> prompts, GenerationOptions options, int batchSize) =>
        Generate(prompts, options, batchSize, MicroBatches);

    IReadOnlyList<GenerationResult> IBatchGenerator.GenerateIds(IReadOnlyList<int[]> prompts, GenerationOptions options, int batchSize) =>
        GenerateIds(prompts, options, batchSize, MicroBatches);

    /// <inheritdoc cref="GenerateIds"/>
    public IReadOnlyList<GenerationResult> Generate(IReadOnlyList<string> prompts, GenerationOptions options, int batchSize = 8, int microBatches = 1) =>
        GenerateIds(_comm.Rank == 0 ? prompts.Select(p => Tokenizer.Encode(p, options.AddBos)).ToList() : [], options, batchSize, microBatches);

    /// <summary>Collective: rank 0 gets one result per prompt, in order; the other ranks an empty list.</summary>
    public IReadOnlyList<GenerationResult> GenerateIds(IReadOnlyList<int[]> prompts, GenerationOptions options, int batchSize = 8, int microBatches = 1)
    {
        if (_comm.Rank != 0)
        {
            var worker = new PipelineStageWorker(_model, _comm);
            worker.Run();
            if (!worker.Started) throw new UserInputException("rank 0 rejected the generation request (its error message says why); every rank stops");
            return [];
        }
        EngineOptions sizes;
        EngineRequest[] requests;
        try
        {
            if (microBatches < 1) throw UserInputException.About($"{new ConfigField("micro_batches")} must be at least 1 (got {microBatches})");
            sizes = EngineGeneration.Sizes(prompts, options, batchSize, _model.Config);
            requests = EngineGeneration.Requests(prompts, options, batchSize, _model.Config, sizes);
        }
        catch (UserInputException)
        {
            // a shutdown before any start: the workers leave and report the refusal instead of waiting for steps
            using var scope = NewDisposeScope();
            StepDescriptor.Broadcast(_comm, new StepDescriptor(StepKind.Shutdown), _model.Device);
            throw;
        }
        using var engine = ServingEngine.OverPipeline(_model, Tokenizer, sizes, _comm, microBatches);
        return EngineGeneration.Run(engine, requests);
    }
}
