using FinQLoRA.Data.Tokenization;
using FinQLoRA.Distributed;
using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Inference.Pipeline;

/// <summary>
/// Pipeline-parallel generation: rank s runs stage s of a <see cref="PipelinePlan"/> and holds only its layers.
/// A batch is cut into micro-batches that flow through the stages GPipe-style: stage 0 embeds and runs its layers
/// and sends the hidden states [b, t, hidden] on; the last stage computes logits, picks the next ids (the same
/// <see cref="TokenSampler"/> as <see cref="TextGenerator"/>, one per micro-batch) and sends them back to stage 0,
/// which records them, applies the stopping rules and embeds them for the next decode step. While stage s works on
/// one micro-batch, stage s+1 works on the previous one, so with at least as many micro-batches as stages every
/// stage stays busy.
/// <para>Deadlock freedom with blocking (even unbuffered) sends: the stages form a ring with the id messages as
/// its back edge. Stage 0 receives the ids of item n−(N−1) before it sends item n (the ids that the last stage
/// produces in the same "tick"), so no cycle of ranks can all be blocked in a send; ids needed earlier than that
/// (fewer micro-batches than stages) are simply waited for.</para>
/// </summary>
public sealed class PipelineGenerator : IBatchGenerator
{
    private readonly DecoderModel _model;
    private readonly ICommunicator _comm;
    private readonly ITextTokenizer _tokenizer;

    /// <param name="stageModel">this rank's stage, loaded with <see cref="PipelineStage.Restrict"/></param>
    public PipelineGenerator(DecoderModel stageModel, PipelinePlan plan, ICommunicator comm, ITextTokenizer tokenizer)
    {
        if (plan.Count != comm.Size)
            throw new UserInputException($"the pipeline has {plan.Count} stages but the job has {comm.Size} ranks; start it with mpirun -np {plan.Count}");
        if (plan.Count < 2)
            throw new ArgumentException("a pipeline needs at least 2 stages; use TextGenerator on one process", nameof(plan));
        Stage = plan.Stages[comm.Rank];
        if (stageModel.Layers.Count != Stage.LayerCount)
            throw new ArgumentException($"stage {Stage.Index} should hold {Stage.LayerCount} layers but the model has {stageModel.Layers.Count}", nameof(stageModel));
        _model = stageModel;
        _comm = comm;
        _tokenizer = tokenizer;
        Plan = plan;
    }

    public PipelinePlan Plan { get; }

    public ITextTokenizer Tokenizer => _tokenizer;

    /// <summary>Micro-batches per batch when called through <see cref="IBatchGenerator"/>.</summary>
    public int MicroBatches { get; init; } = 1;

    IReadOnlyList<GenerationResult> IBatchGenerator.Generate(IReadOnlyList<string> prompts, GenerationOptions options, int batchSize) =>
        Generate(prompts, options, batchSize, MicroBatches);

    IReadOnlyList<GenerationResult> IBatchGenerator.GenerateIds(IReadOnlyList<int[]> prompts, GenerationOptions options, int batchSize) =>
        GenerateIds(prompts, options, batchSize, MicroBatches);
    public PipelineStage Stage { get; }
    private bool IsFirst => Stage.Index == 0;
    private bool IsLast => Stage.Index == Plan.Count - 1;

    /// <summary>Collective: every rank calls it. Rank 0's prompts and options are used (the others may pass an empty
    /// list); rank 0 gets one result per prompt, the other ranks an empty list.</summary>
    public IReadOnlyList<GenerationResult> Generate(IReadOnlyList<string> prompts, GenerationOptions options, int batchSize = 8, int microBatches = 1) =>
        GenerateIds(IsFirst ? prompts.Select(p => _tokenizer.Encode(p, options.AddBos)).ToList() : [], options, batchSize, microBatches);

    /// <inheritdoc cref="Generate"/>
    public IReadOnlyList<GenerationResult> GenerateIds(IReadOnlyList<int[]> prompts, GenerationOptions options, int batchSize = 8, int microBatches = 1)
    {
        PipelineRequest request;
        if (IsFirst)
        {
            try
            {
                options.Validate();
                if (batchSize < 1) throw UserInputException.About($"{new ConfigField("batch_size")} must be at least 1 (got {batchSize})");
                if (microBatches < 1) throw UserInputException.About($"{new ConfigField("micro_batches")} must be at least 1 (got {microBatches})");
                options.CheckPrompts(prompts, _model.Config.MaxPositionEmbeddings);
            }
            catch (UserInputException)
            {
                try { PipelineRequest.Exchange(_comm, null); } catch (UserInputException) { } // tells the others to stop
                throw;
            }
            request = PipelineRequest.Exchange(_comm, new PipelineRequest(prompts.Select(p => p.Length).ToArray(), batchSize, microBatches, options));
        }
        else
        {
            request = PipelineRequest.Exchange(_comm, null);
        }

        var results = new GenerationResult[request.Lengths.Length];
        using var noGrad = no_grad();
        foreach (int[][] parts in request.Batches())
        {
            var batch = parts.Select(rows => NewMicroBatch(rows, prompts, request)).ToArray();
            try
            {
                if (IsFirst) RunFirstStage(batch, prompts, request);
                else RunLaterStage(batch, request.MicroBatches);
                if (IsFirst)
                    foreach (var mb in batch)
                    {
                        var outputs = mb.Progress!.Results();
                        for (int j = 0; j < mb.Size; j++) results[mb.Rows[j]] = outputs[j];
                    }
            }
            finally
            {
                foreach (var mb in batch) mb.Dispose();
            }
        }
        return IsFirst ? results : [];
    }

    private MicroBatch NewMicroBatch(int[] rows, IReadOnlyList<int[]> prompts, PipelineRequest request)
    {
        var lengths = rows.Select(r => request.Lengths[r]).ToArray();
        var cache = new KvCache(_model.Config, rows.Length, lengths.Max() + request.Options.MaxNewTokens, _model.ComputeDType,
            _model.Device, Stage.FirstLayer, Stage.LayerCount);
        return new MicroBatch(rows, lengths, cache)
        {
            Progress = IsFirst ? new GenerationProgress(rows.Select(r => prompts[r]).ToArray(), request.Options, _tokenizer) : null,
            Sampler = IsLast ? new TokenSampler(request.Options, _model.Device) : null,
        };
    }

    /// <summary>Stage 0: for each step, each unfinished micro-batch in turn: embed, run the stage's layers, collect
    /// the ids that are due, send the hidden states on.</summary>
    private void RunFirstStage(MicroBatch[] batch, IReadOnlyList<int[]> prompts, PipelineRequest request)
    {
        int m = request.MicroBatches, last = Plan.Count - 1;
        var sent = new List<(int MicroBatch, int Step)>();
        int received = 0;

        void ReceiveNext()
        {
            using var scope = NewDisposeScope();
            var (k, step) = sent[received++];
            var ids = zeros(batch[k].Size, ScalarType.Int64);
            _comm.Recv(ids, last, PipelineTags.Ids(k, step, m));
            long[] chosen = ids.data<long>().ToArray();
            var progress = batch[k].Progress!;
            progress.Record(chosen);
            batch[k].NextFeed = progress.Done ? null : progress.NextFeed(chosen);
        }

        // Before sending item n, take the ids of item n − (N − 1): the last stage sends them in the same tick.
        void ReceiveDue(int n)
        {
            while (received < n && received <= n - last) ReceiveNext();
        }

        for (int step = 0; step < request.Options.MaxNewTokens; step++)
        {
            bool any = false;
            for (int k = 0; k < batch.Length; k++)
            {
                var mb = batch[k];
                while (step > 0 && !mb.Progress!.Done && mb.Progress.Steps < step) ReceiveNext();
                if (mb.Progress!.Done) continue;
                any = true;
                using var scope = NewDisposeScope();
                var ids = step == 0
                    ? tensor(LeftPadding.Build(mb.Rows.Select(r => prompts[r]).ToArray(), _tokenizer.PadId).Ids, [mb.Size, mb.Longest], device: _model.Device)
                    : tensor(mb.NextFeed!, [mb.Size, 1], device: _model.Device);
                var h = Forward(mb, step, _model.Embed(ids));
                ReceiveDue(sent.Count);
                sent.Add((k, step));
                SendHeader(step: step, microBatch: k, more: true);
                _comm.Send(h, 1, PipelineTags.Hidden(k, step, m));
            }
            if (!any) break;
        }
        ReceiveDue(sent.Count);
        SendHeader(0, 0, more: false);
        while (received < sent.Count) ReceiveNext();
    }

    /// <summary>Stages 1..N−1: take items from the previous stage in the order they come until the end marker;
    /// the middle stages pass the hidden states on, the last one sends the chosen ids back to stage 0.</summary>
    private void RunLaterStage(MicroBatch[] batch, int m)
    {
        int previous = Stage.Index - 1;
        while (true)
        {
            using var scope = NewDisposeScope();
            var header = zeros(3, ScalarType.Int64);
            _comm.Recv(header, previous, PipelineTags.Header);
            long[] fields = header.data<long>().ToArray();
            if (fields[0] == 0)
            {
                if (!IsLast) SendHeader(0, 0, more: false);
                return;
            }
            int k = (int)fields[1], step = (int)fields[2];
            var mb = batch[k];
            var input = empty([mb.Size, mb.StepLength(step), _model.Config.HiddenSize], _model.ComputeDType, _model.Device);
            _comm.Recv(input, previous, PipelineTags.Hidden(k, step, m));
            var h = Forward(mb, step, input);
            if (IsLast)
            {
                var logits = _model.Head(h.narrow(1, h.shape[1] - 1, 1));
                var ids = mb.Sampler!.Next(logits.select(1, 0)).to(ScalarType.Int64, CPU).contiguous();
                _comm.Send(ids, 0, PipelineTags.Ids(k, step, m));
            }
            else
            {
                SendHeader(step, k, more: true);
                _comm.Send(h, Stage.Index + 1, PipelineTags.Hidden(k, step, m));
            }
        }
    }

    /// <summary>This stage's layers on one item, appending to the micro-batch's cache.</summary>
    private Tensor Forward(MicroBatch mb, int step, Tensor h)
    {
        var (positions, mask) = mb.Attention(step, _model.Device);
        var output = _model.RunLayers(h, 0, Stage.LayerCount, positions, mask, mb.Cache);
        mb.Cache.Advance(mb.StepLength(step));
        return output;
    }

    private void SendHeader(int step, int microBatch, bool more)
    {
        using var header = tensor(new long[] { more ? 1 : 0, microBatch, step });
        _comm.Send(header, Stage.Index + 1, PipelineTags.Header);
    }
}
