using FinQLoRA.Distributed;
using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Serving.Pipeline;

/// <summary>
/// A pipeline stage after the first (ranks 1..N−1 of <c>serve --pipeline-stages N</c>): it holds only its layers,
/// the KV slots of those layers and their adapters, and executes rank 0's <see cref="StepDescriptor"/>s until the
/// shutdown one. In a layer step it receives each micro-batch's hidden states from the rank before, runs its layers
/// with each row's adapter and writes into its slots where rank 0's scheduler placed the rows, and sends the result
/// on (the last stage: back to rank 0). A failure here ends the whole job with a line naming this rank: rank 0 could
/// not go on without this stage's layers.
/// </summary>
public sealed class PipelineStageWorker
{
    /// <summary>Test hook: "stall:K" stops answering after K layer steps (as a hung rank), "exit:K" exits with 3.</summary>
    public const string FaultVariable = "FINQLORA_TEST_PIPELINE_FAULT";

    private readonly DecoderModel _model;
    private readonly ICommunicator _comm;
    private SlotKvCache? _cache;
    private StageAdapters? _adapters;
    private int _layerSteps;
    private readonly (string Mode, int After)? _fault;

    /// <param name="stageModel">this rank's stage (<see cref="PipelineServingStage.Load"/>); its adapters come as rank 0's
    /// residency places them (<see cref="StageAdapters"/>)</param>
    public PipelineStageWorker(DecoderModel stageModel, ICommunicator comm)
    {
        if (comm.Rank == 0) throw new ArgumentException("rank 0 drives the pipeline (ServingEngine.OverPipeline); the worker runs on ranks 1..N-1", nameof(comm));
        _model = stageModel;
        _comm = comm;
        _fault = ParseFault(Environment.GetEnvironmentVariable(FaultVariable));
    }

    /// <summary>Rank 0 started its engine (a shutdown before any start means rank 0 refused the work).</summary>
    public bool Started { get; private set; }

    /// <summary>The KV slots of this stage's layers, once rank 0 has started the engine.</summary>
    public long KvCacheBytes { get; private set; }

    /// <summary>Executes descriptors until rank 0 says shutdown; then frees the slots and adapter stacks.</summary>
    public void Run()
    {
        _model.eval();
        using var noGrad = no_grad();
        try
        {
            while (Execute()) { }
        }
        catch (Exception e)
        {
            _comm.Abort($"error: serve: rank {_comm.Rank} of {_comm.Size}: pipeline stage failed ({e.GetType().Name}: {e.Message}); aborting the job", 1);
        }
        finally
        {
            _adapters?.Dispose();
            _cache?.Dispose();
        }
    }

    private bool Execute()
    {
        StepDescriptor step;
        using (var scope = NewDisposeScope())
        {
            // the step's tensors live in this scope; what the other kinds make (slots, adapter weights) must outlive it
            step = StepDescriptor.Broadcast(_comm, null, _model.Device);
            if (step.Kind == StepKind.Layers)
            {
                InjectFault();
                Layers(step);
                return true;
            }
        }
        switch (step.Kind)
        {
            case StepKind.Start:
                Started = true;
                _cache?.Dispose();
                _cache = new SlotKvCache(_model.Config, step.MaxBatch, step.MaxModelLen, _model.ComputeDType, _model.Device, _model.FirstLayer, _model.Layers.Count);
                KvCacheBytes = _cache.Bytes;
                _adapters ??= new StageAdapters(_model, step.MaxLoras);
                break;
            case StepKind.Move:
                Cache.Move(step.From, step.To, step.Length);
                break;
            case StepKind.PlaceAdapter:
                Adapters.Place(step.Name, step.Directory.Length == 0 ? null : step.Directory, step.Index);
                break;
            case StepKind.VacateAdapter:
                Adapters.Vacate(step.Name);
                break;
            case StepKind.RemoveAdapter:
                Adapters.Remove(step.Name);
                break;
            case StepKind.Heartbeat:
                break;
            case StepKind.Shutdown:
                return false;
        }
        return true;
    }

    private SlotKvCache Cache => _cache ?? throw new InvalidOperationException("rank 0 sent a step before the start");
    private StageAdapters Adapters => _adapters ?? throw new InvalidOperationException("rank 0 sent a step before the start");

    /// <summary>Each micro-batch in order: receive, run this stage's layers, send on (the last stage: to rank 0).</summary>
    private void Layers(StepDescriptor step)
    {
        var runs = MicroBatchRuns.Split(step.Rows, step.MicroBatches);
        int previous = _comm.Rank - 1, next = (_comm.Rank + 1) % _comm.Size;
        for (int m = 0; m < runs.Length; m++)
        {
            using var scope = NewDisposeScope();
            var (from, count) = runs[m];
            var input = empty([count, step.Tokens, _model.Config.HiddenSize], _model.ComputeDType, _model.Device);
            _comm.Recv(input, previous, MicroBatchRuns.Tag(m));
            Adapters.Select(step.Adapters.Skip(from).Take(count));
            try
            {
                step.Write!.Begin(Cache, from, count);
                var h = _model.RunLayers(input, 0, _model.Layers.Count, step.Positions!.narrow(0, from, count), step.Mask!.narrow(0, from, count), Cache);
                _comm.Send(h.contiguous(), next, MicroBatchRuns.Tag(m));
            }
            finally { Adapters.ClearSelection(); }
        }
    }

    private void InjectFault()
    {
        if (_fault is not { } fault || ++_layerSteps <= fault.After) return;
        Console.Error.WriteLine($"rank {_comm.Rank}: {FaultVariable}={fault.Mode}:{fault.After}: failing now");
        if (fault.Mode == "exit") Environment.Exit(3);
        Thread.Sleep(Timeout.Infinite);
    }

    private static (string, int)? ParseFault(string? value)
    {
        if (string.IsNullOrWhiteSpace(value)) return null;
        var parts = value.Split(':');
        if (parts.Length == 2 && parts[0] is "stall" or "exit" && int.TryParse(parts[1], out int after) && after >= 0) return (parts[0], after);
        throw new UserInputException($"{FaultVariable}='{value}' is not a test fault; use stall:K or exit:K (K layer steps first), or unset it");
    }
}
