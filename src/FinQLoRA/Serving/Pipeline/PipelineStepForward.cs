using FinQLoRA.Distributed;
using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Serving.Pipeline;

/// <summary>
/// Rank 0's side of pipeline serving: it runs the first stage's layers here and drives the others. Each step is first
/// broadcast as a <see cref="StepDescriptor"/>; then its rows are cut into micro-batches that flow through the stages
/// (stage s sends micro-batch m's hidden states to s+1 and starts on m+1), and the last stage sends the hidden states
/// after the last layer back here, where the <see cref="ModelRunner"/> applies the final norm and head and samples
/// exactly as in one process. The head lives on rank 0 for that reason (and because a tied head is the embedding
/// matrix rank 0 holds anyway); what comes back is [rows, tokens, hidden], not [rows, vocab] logits.
/// <para>No deadlock with blocking sends: before sending micro-batch m, rank 0 receives the outputs of micro-batches
/// up to m − (N − 1), which the last stage sends in the same round: the stages form a ring whose back edge is those
/// outputs, so no cycle of ranks can all be blocked in a send.</para>
/// A failure here (an exception mid-step, or the watchdog's timeout on a rank that stopped answering) marks the engine
/// faulted, so that readiness reads false, and ends the job with a line naming the rank: the other stages cannot be
/// brought back in step.
/// </summary>
internal sealed class PipelineStepForward : IStepForward
{
    private readonly DecoderModel _model;
    private readonly SlotKvCache _cache;
    private readonly Residency.AdapterResidency _adapters;
    private readonly ICommunicator _comm;
    private readonly int _microBatches;
    private readonly Action<string> _fault;
    private bool _stopped;

    public PipelineStepForward(DecoderModel model, SlotKvCache cache, Residency.AdapterResidency adapters, ICommunicator comm, int microBatches,
        EngineOptions options, Action<string> fault)
    {
        _model = model;
        _cache = cache;
        _adapters = adapters;
        _comm = comm;
        _microBatches = microBatches;
        _fault = fault;
        var watchdog = comm switch { MpiCommunicator m => m.Watchdog, NcclCommunicator n => n.Watchdog, _ => null };
        if (watchdog is not null)
        {
            watchdog.BeforeAbort = message => fault($"a pipeline rank stopped answering: {message}");
            // a waiting stage's watchdog must not fire while the server is merely idle
            IdleTick = TimeSpan.FromSeconds(Math.Min(1, watchdog.Timeout.TotalSeconds / 4));
        }
        Guarded(() => Send(new StepDescriptor(StepKind.Start) { MaxBatch = options.MaxBatch, MaxModelLen = options.MaxModelLen, MaxLoras = options.MaxLoras }));
    }

    public TimeSpan? IdleTick { get; }

    public Tensor Prefill(IReadOnlyList<string?> adapters, Tensor ids, Tensor positions, Tensor mask, CacheWrite write) =>
        Guarded(() => Layers(adapters, ids, positions, mask, write));

    public Tensor Decode(IReadOnlyList<string?> adapters, Tensor feed, Tensor lengths, Tensor mask, CacheWrite.Decode write) =>
        Guarded(() => _model.Head(Layers(adapters, feed, lengths, mask, write)));

    public void Move(int from, int to, int length)
    {
        if (from == to || length == 0) return;
        _cache.Move(from, to, length);
        Guarded(() => Send(new StepDescriptor(StepKind.Move) { From = from, To = to, Length = length }));
    }

    public void AdapterPlaced(string name, string? dir, int index) =>
        Guarded(() => Send(new StepDescriptor(StepKind.PlaceAdapter) { Name = name, Directory = dir is null ? "" : Path.GetFullPath(dir), Index = index }));

    public void AdapterVacated(string name) => Guarded(() => Send(new StepDescriptor(StepKind.VacateAdapter) { Name = name }));

    public void AdapterRemoved(string name) => Guarded(() => Send(new StepDescriptor(StepKind.RemoveAdapter) { Name = name }));

    public void Idle() => Guarded(() => Send(new StepDescriptor(StepKind.Heartbeat)));

    /// <summary>Tells the other stages to leave their loops (on the scheduler thread, as it ends).</summary>
    public void Dispose()
    {
        if (_stopped) return;
        _stopped = true;
        Guarded(() => Send(new StepDescriptor(StepKind.Shutdown)));
    }

    private void Send(StepDescriptor step)
    {
        using var scope = NewDisposeScope();
        StepDescriptor.Broadcast(_comm, step, _model.Device);
    }

    /// <summary>This stage's layers over each micro-batch in turn, sending each on; returns the last stage's hidden
    /// states of all rows, in order, with the caller's adapter selection back in place for the head.</summary>
    private Tensor Layers(IReadOnlyList<string?> adapters, Tensor ids, Tensor positions, Tensor mask, CacheWrite write)
    {
        using var scope = NewDisposeScope();
        int rows = (int)ids.shape[0], tokens = (int)ids.shape[1], last = _comm.Size - 1;
        var runs = MicroBatchRuns.Split(rows, _microBatches);
        StepDescriptor.Broadcast(_comm, new StepDescriptor(StepKind.Layers)
        {
            Rows = rows, Tokens = tokens, MicroBatches = runs.Length, Write = write, Positions = positions, Mask = mask, Adapters = [.. adapters],
        }, _model.Device);
        var outputs = new Tensor[runs.Length];
        int received = 0;
        void Receive()
        {
            var (_, count) = runs[received];
            outputs[received] = empty([count, tokens, _model.Config.HiddenSize], _model.ComputeDType, _model.Device);
            _comm.Recv(outputs[received], last, MicroBatchRuns.Tag(received));
            received++;
        }
        try
        {
            for (int m = 0; m < runs.Length; m++)
            {
                var (from, count) = runs[m];
                _adapters.ClearSelection();
                _adapters.Select(adapters.Skip(from).Take(count));
                write.Begin(_cache, from, count);
                var h = _model.RunLayers(_model.Embed(ids.narrow(0, from, count)), 0, _model.Layers.Count,
                    positions.narrow(0, from, count), mask.narrow(0, from, count), _cache);
                while (received <= m - last) Receive();
                _comm.Send(h.contiguous(), 1, MicroBatchRuns.Tag(m));
            }
            while (received < runs.Length) Receive();
        }
        finally
        {
            _adapters.ClearSelection();
            _adapters.Select(adapters);
        }
        var all = runs.Length == 1 ? outputs[0] : cat(outputs, 0);
        return all.MoveToOuterDisposeScope();                                                   // [rows, tokens, hidden]
    }

    private void Guarded(Action action) => Guarded(() => { action(); return 0; });

    private T Guarded<T>(Func<T> action)
    {
        try { return action(); }
        catch (Exception e)
        {
            string message = $"error: serve: rank 0 of {_comm.Size}: a pipeline step failed ({e.GetType().Name}: {e.Message}); the stages are out of step, aborting the job";
            _fault(message);
            _comm.Abort(message, 1);
            throw; // Abort does not return
        }
    }
}
