using FinQLoRA.Loading;
using FinQLoRA.Data.Formats;
using FinQLoRA.Data.Tasks;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using FinQLoRA.Adapters;
using FinQLoRA.Data.Sft;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Distributed;
using FinQLoRA.Inference;
using FinQLoRA.Models;
using FinQLoRA.Quantization;
using FinQLoRA.Runtime;
using FinQLoRA.Training.Optimizers;
using FinQLoRA.Training.Schedules;
using static TorchSharp.torch;

namespace FinQLoRA.Training;

/// <summary>
/// The supervised fine-tuning recipe (QLoRA): load the base (quantized tensor by tensor), wrap the target
/// projections in LoRA, then for each optimizer step run <c>grad_accum</c> micro-batches, average gradients
/// across data-parallel ranks, clip, step, and checkpoint. Loss is the cross-entropy on target tokens only,
/// normalised by the number of target tokens in the whole global step (all micro-batches, all ranks), so that
/// N ranks with batch b give the same update as one rank with batch N·b.
/// </summary>
public sealed class SftTrainer
{
    private readonly TrainConfig _config;
    private readonly ICommunicator _comm;
    private readonly Action<string> _log;
    private readonly ITextTokenizer? _tokenizer;
    private readonly CancellationToken _stop;
    private EvalResult? _lastEval;

    /// <param name="tokenizer">overrides the model folder's tokenizer (the demo uses one shipped in a NuGet package)</param>
    /// <param name="stop">when cancelled (Ctrl-C, SIGTERM), the run saves a checkpoint after the optimizer step in
    /// progress and ends with <see cref="TrainingInterruptedException"/></param>
    public SftTrainer(TrainConfig config, ICommunicator? communicator = null, Action<string>? log = null, ITextTokenizer? tokenizer = null,
        CancellationToken stop = default)
    {
        _tokenizer = tokenizer;
        _stop = stop;
        _config = config;
        _comm = communicator ?? new SingleProcessCommunicator();
        _log = log ?? (_ => { });
    }

    private bool IsMain => _comm.Rank == 0;
    private void Log(string line) { if (IsMain) _log(line); }

    public TrainResult Run()
    {
        var c = _config;
        var wall = Stopwatch.StartNew();
        manual_seed(c.Seed);
        var dtype = c.Dtype;
        var device = c.Device.ToTorch();
        RunFolder.Check(c);

        // 1. Base model, frozen and quantized as it loads.
        var loadOptions = new ModelLoadOptions { DType = dtype, Device = device }
            .WithBits(c.Bits, c.Quant, c.DoubleQuant);
        var loadTimer = Stopwatch.StartNew();
        using var model = ModelLoading.LoadModel(c.Model, loadOptions);
        ITextTokenizer tokenizer = _tokenizer ?? ModelLoading.LoadTokenizer(c.Model);
        double loadSeconds = loadTimer.Elapsed.TotalSeconds;
        model.GradientCheckpointing = c.GradCheckpointing;
        CheckRankFits(model.Config, c);
        using var runFolder = RunFolder.Claim(c, IsMain);

        // 2. Adapters: fresh (seeded init) or from the latest checkpoint when resuming.
        var lora = new LoraConfig
        {
            Rank = c.Rank, Alpha = c.Alpha, Dropout = c.Dropout, TargetModules = LoraTargets.Names(c.Targets),
            UseRsLora = c.UseRslora, UseDora = c.UseDora, BaseModelNameOrPath = c.Model, InitSeed = c.Seed,
        };
        TrainingCheckpoint.Loaded? resume = null;
        if (c.Resume)
        {
            resume = ResumeFromLatest(model, lora);
        }
        else LoraInjector.Apply(model, lora, c.Seed);
        Log(LoraInjector.PrintTrainableParameters(model));
        var parameters = LoraInjector.AdapterParameters(model).ToList();
        if (resume is { RankParameters.Count: > 0 }) LoadRankParameters(parameters, resume.RankParameters);

        // 3. Data: tokenized once; the batch order of each epoch is a pure function of (seed, epoch).
        var sft = new SftTokenizer(tokenizer, c.MaxSeqLen);
        // Several sources (a task family) are each split for evaluation, then mixed by weight.
        var sources = new List<(DataSource Source, List<SftRecord> Train, List<SftRecord> Eval)>();
        foreach (var source in c.DataSources)
        {
            var data = ReadData(source.File);
            Log($"data: {data.Records.Count} {DataFormats.Name(data.Format)} records from {source.File}" + (c.DataSources.Count > 1 ? $" (task {source.Name}, weight {source.Weight:G4})" : ""));
            if (data.Records.Count == 0) throw new UserInputException($"{source.File}: no examples; each line needs 'context' and 'target' (or instruction/output, or messages)");
            var (train, held) = TrainingEvaluator.Split(data.Records, c);
            sources.Add((source, train, held));
        }
        var examples = DataSource.Mix(sources.Select(s => (s.Source, s.Train.Select(r => sft.Tokenize(r)).ToList())).ToList(), c.Seed);
        if (sources.Count > 1) Log($"task family: {examples.Count} examples per epoch, " + string.Join(", ", sources.Select(s => $"{s.Source.Name} {Math.Round(examples.Count * s.Source.Weight / sources.Sum(x => x.Source.Weight))}")));
        List<(string, List<SftRecord>)> evalTasks = c.EvalData != null ? [("eval", ReadData(c.EvalData).Records)]
            : sources.Where(s => s.Eval.Count > 0).Select(s => (s.Source.Name, s.Eval)).ToList();
        var evaluator = evalTasks.Count > 0 ? new TrainingEvaluator(evalTasks, sft, tokenizer, c, device) : null;
        var best = new BestCheckpoint(c.MetricForBest, c.EarlyStoppingPatience);
        if (resume != null) best.Load(resume.Best);
        var reporter = new TrainingReporter(c, IsMain);
        if (sft.TruncatedPrompts > 0) Log($"warning: {sft.TruncatedPrompts} prompts were longer than max_seq_len {c.MaxSeqLen} and were cut from the left");
        if (sft.TruncatedTargets > 0) Log($"warning: {sft.TruncatedTargets} targets were cut to fit max_seq_len {c.MaxSeqLen}");
        int globalBatch = c.BatchSize * _comm.Size;
        if (c.Packing)
        {
            // rows of several examples each; batching, sharding and resume then work on rows as on examples
            double before = SamplePacking.PaddingFraction(examples, LengthGroupedBatches.ForEpoch(examples.Select(e => e.Length).ToArray(), globalBatch, c.Seed, 0, c.GroupByLength));
            int count = examples.Count;
            examples = [.. SamplePacking.Pack(examples, c.MaxSeqLen)];
            double after = SamplePacking.PaddingFraction(examples, LengthGroupedBatches.ForEpoch(examples.Select(e => e.Length).ToArray(), globalBatch, c.Seed, 0, c.GroupByLength));
            Log($"packing: {count} examples in {examples.Count} rows of up to {c.MaxSeqLen} tokens; padding {before:P1} → {after:P1} of the batch positions");
        }
        var lengths = examples.Select(e => e.Length).ToArray();
        int batchesPerEpoch = (examples.Count + globalBatch - 1) / globalBatch;
        int stepsPerEpoch = Math.Max(1, batchesPerEpoch / c.GradAccum);
        int totalSteps = c.MaxSteps > 0 ? c.MaxSteps : stepsPerEpoch * c.Epochs;

        // 4. Optimizer and schedule.
        using var communication = new TrainerCommunication(_comm);
        using IAdapterOptimizer optimizer = c.Optimizer == OptimizerKind.ZeroOneAdam
            ? new ZeroOneAdamOptimizer(parameters, communication, new ZeroOneAdamOptions(WeightDecay: c.WeightDecay,
                VarFreezeStep: c.VarFreezeStep, VarUpdateScaler: c.VarUpdateScaler, LocalStepScaler: c.LocalStepScaler, LocalStepClipper: c.LocalStepClipper))
            : new AdamWOptimizer(parameters, new AdamWOptions(WeightDecay: c.WeightDecay));
        var schedule = new LrSchedule(c.LrSchedule, c.Lr, c.WarmupSteps, totalSteps);
        var reducer = new GradientAllReducer(_comm);

        int step = 0, epoch = 0, nextBatch = 0;
        if (resume != null)
        {
            (step, epoch, nextBatch) = (resume.State.Step, resume.State.Epoch, resume.State.NextBatch);
            var scalars = resume.OptimizerScalars.Deserialize<OptimizerScalarState>()!;
            using (var state = new OptimizerCheckpoint(resume.OptimizerTensors, scalars)) optimizer.LoadStateDict(state);
            schedule.LoadState(new LrScheduleState(step));
            set_rng_state(resume.RngState);
        }

        var metrics = new MetricsLog(c.Out, IsMain, truncateAfterStep: step);
        if (evaluator != null) Log($"evaluation: {evaluator.Count} held-out examples ({(c.EvalData != null ? c.EvalData : $"{c.EvalSplit:P0} of the training data")}), every {(c.EvalEvery > 0 ? $"{c.EvalEvery} steps and " : "")}at the end");
        Log($"training: {examples.Count} examples, {totalSteps} steps ({stepsPerEpoch}/epoch), batch {c.BatchSize}x{c.GradAccum}x{_comm.Size} ranks, {c.Bits}-bit base, rank {c.Rank}, {OptimizerKinds.Spellings.Name(c.Optimizer)}");
        var trainTimer = Stopwatch.StartNew();
        long tokensSeen = 0, commBytesAtLastLine = _comm.BytesSent;
        int startStep = step, stepAtLastLine = step;
        double lastLoss = resume?.State.LastLoss ?? double.NaN;
        var spikes = new LossSpikeDetector();
        if (resume != null) spikes.Check(lastLoss); // compare the first resumed steps with where the run was
        // A checkpoint holds the weights after its step; only the next step's loss shows whether they are sound, so
        // the newest checkpoint stays "unconfirmed" (and older ones are kept) until that loss has been seen.
        int? unconfirmed = null;

        while (step < totalSteps)
        {
            var order = LengthGroupedBatches.ForEpoch(lengths, globalBatch, c.Seed, epoch, c.GroupByLength);
            while (step < totalSteps && nextBatch + c.GradAccum <= order.Length)
            {
                var micro = order.Skip(nextBatch).Take(c.GradAccum)
                    .Select(g => LengthGroupedBatches.Shard(g, _comm.Rank, _comm.Size).Select(i => examples[i]).ToList()).ToList();
                var (loss, tokens, stopRequested, gradNorm) = OptimizerStep(model, micro, optimizer, reducer, parameters, schedule.CurrentLearningRate, tokenizer.PadId, device);
                nextBatch += c.GradAccum;
                schedule.Advance();
                step++;
                tokensSeen += tokens;
                if (spikes.Check(loss) is { } diverged) throw Diverged(diverged, step, firstBadWeights: step - 1);
                if (unconfirmed is not null && IsMain) TrainingCheckpoint.Prune(c.Out, c.KeepCheckpoints);
                unconfirmed = null;
                lastLoss = loss;
                if (step % c.LogEvery == 0 || step == totalSteps)
                {
                    double elapsed = trainTimer.Elapsed.TotalSeconds;
                    double tokPerSec = tokensSeen / Math.Max(elapsed, 1e-9);
                    // Bytes rank 0 handed to the network per optimizer step since the previous line (all collectives).
                    long commBytes = (_comm.BytesSent - commBytesAtLastLine) / Math.Max(1, step - stepAtLastLine);
                    (commBytesAtLastLine, stepAtLastLine) = (_comm.BytesSent, step);
                    double eta = (totalSteps - step) * elapsed / Math.Max(1, step - startStep);
                    var line = new MetricsLine(step, totalSteps, epoch + (double)nextBatch / order.Length, loss,
                        schedule.LearningRateAt(step - 1), tokPerSec, eta, MemoryUsage.CurrentRssBytes, commBytes);
                    metrics.Append(line);
                    reporter.Train(line, gradNorm);
                    Log(line.Format());
                }
                bool earlyStop = false;
                if (evaluator != null && c.EvalEvery > 0 && step % c.EvalEvery == 0 && step < totalSteps)
                    earlyStop = EvaluateAndTrackBest(evaluator, model, lora, step, metrics, reporter, best);
                bool saved = false;
                if (c.SaveEvery > 0 && step % c.SaveEvery == 0 && step < totalSteps)
                {
                    SaveCheckpoint(model, lora, optimizer, parameters, step, epoch, nextBatch, loss, best);
                    (saved, unconfirmed) = (true, step);
                }
                if (stopRequested && step < totalSteps)
                {
                    if (!saved) SaveCheckpoint(model, lora, optimizer, parameters, step, epoch, nextBatch, loss, best);
                    throw new TrainingInterruptedException(step, Path.Combine(c.Out, TrainingCheckpoint.Prefix + step));
                }
                if (earlyStop)
                {
                    Log($"early stopping at step {step}: {c.MetricForBest} has not improved on {best.Value:G6} (step {best.Step}) for {best.EvalsWithoutImprovement} evaluations");
                    totalSteps = step;
                }
            }
            if (step < totalSteps) { epoch++; nextBatch = 0; }
        }
        double trainSeconds = trainTimer.Elapsed.TotalSeconds;

        // 5. Final adapter, evaluation loss, run record, plot.
        EvalResult? finalEval = _lastEval is { } last && last.Step == step ? last : null; // early stopping just evaluated
        if (evaluator != null && finalEval == null)
        {
            EvaluateAndTrackBest(evaluator, model, lora, step, metrics, reporter, best);
            finalEval = _lastEval;
        }
        double? evalLoss = finalEval?.Loss;
        string adapterDir = Path.Combine(c.Out, "adapter");
        PeftAdapterInfo? info = null;
        JsonObject? lineage = null;
        if (FirstNonFinite(parameters.Select(p => (p.Name, (Tensor)p.P))) is { } badFinal)
            throw Diverged($"adapter tensor {badFinal} is not finite after the last step", step, firstBadWeights: step);
        if (IsMain)
        {
            TrainingCheckpoint.Prune(c.Out, c.KeepCheckpoints);
            lineage = RunLineage.Describe(c);
            info = PeftAdapterFiles.Save(adapterDir, model, lora, extraFiles: folder =>
            {
                File.WriteAllText(Path.Combine(folder, ModelCard.FileName), ModelCard.Render(c, lineage, step, lastLoss, evalLoss, tokensSeen));
                RunLineage.WriteInto(folder, lineage);
            });
            lineage["adapter_files"] = RunLineage.HashFolder(adapterDir, IO.OutputMarker.FileName);
            metrics.WritePlot(Path.Combine(c.Out, "loss.png"));
        }
        var result = new TrainResult(step, lastLoss, evalLoss, trainSeconds, loadSeconds, tokensSeen,
            MemoryUsage.PeakRssBytes, info?.AdapterBytes ?? 0, adapterDir, wall.Elapsed.TotalSeconds);
        if (IsMain) RunRecord.Write(c, result, Path.Combine(c.Out, RunRecord.FileName), _comm.Size, lineage, finalEval, evaluator != null ? best : null);
        _comm.Barrier();
        return result;
    }

    /// <returns>the step's loss (mean over its target tokens) and the tokens it trained on, both over all ranks, and
    /// whether any rank was asked to stop (agreed in the same all-reduce, so every rank stops after the same step)</returns>
    private (double Loss, long Tokens, bool Stop, double GradNorm) OptimizerStep(LlamaModel model, List<List<TokenizedExample>> micro, IAdapterOptimizer optimizer,
        GradientAllReducer reducer, List<(string Name, TorchSharp.Modules.Parameter P)> parameters, double lr, int padId, Device device)
    {
        // Normalise by the target tokens of the whole global step, so ranks and micro-batches add up exactly.
        long localTargets = micro.Sum(m => m.Sum(e => e.Labels.Skip(1).Count(l => l != TokenizedExample.IgnoreIndex)));
        double globalTargets = AllReduceSum(localTargets);
        double lossSum = 0;
        long tokens = 0;
        model.train();
        foreach (var examples in micro)
        {
            if (examples.Count == 0) continue;
            using var scope = NewDisposeScope();
            using var batch = SftCollator.Collate(examples, padId, device);
            var sum = SupervisedLoss(model, batch);
            (sum * (_comm.Size / Math.Max(globalTargets, 1))).backward();
            lossSum += sum.item<float>();
            tokens += batch.Tokens;
        }
        // A rank whose shard of a short last batch is empty has no gradient yet at its first step; give it zeros so
        // it joins the all-reduce with the same tensors as the others (and 0/1 Adam finds a gradient everywhere).
        if (parameters.Any(p => p.P.grad is null)) MaterialiseZeroGradients(parameters);
        if (!optimizer.CommunicatesGradients && _comm.Size > 1)
            reducer.AllReduceAverage(parameters.Select(p => p.P.grad ?? zeros_like(p.P)).ToList());
        double gradNorm = _config.MaxGradNorm > 0 ? GradientClipping.ClipGradNorm(parameters.Select(p => p.P), _config.MaxGradNorm) : double.NaN;
        optimizer.Step(lr);
        optimizer.ZeroGrad();
        var (globalLoss, globalTokens, stops) = AllReduceSum(lossSum, tokens, _stop.IsCancellationRequested ? 1 : 0);
        return (globalLoss / Math.Max(globalTargets, 1), (long)globalTokens, stops > 0, gradNorm);
    }

    private static void MaterialiseZeroGradients(List<(string Name, TorchSharp.Modules.Parameter P)> parameters)
    {
        using var scope = NewDisposeScope();
        parameters.Select(p => p.P.sum() * 0).Aggregate((a, b) => a + b).backward();
    }

    /// <summary>This rank's own adapter weights from a checkpoint (0/1 Adam: they differ between synchronisations).</summary>
    private static void LoadRankParameters(List<(string Name, TorchSharp.Modules.Parameter P)> parameters, Dictionary<string, Tensor> values)
    {
        using var noGrad = no_grad();
        foreach (var (name, p) in parameters)
        {
            if (!values.TryGetValue(name, out var value))
                throw new UserInputException($"the checkpoint's per-rank state has no value for adapter parameter '{name}'; resume with the same adapter config");
            p.copy_(value);
        }
        foreach (var value in values.Values) value.Dispose();
    }

    /// <summary>
    /// Summed cross-entropy on target positions, computing logits only where the loss is: the hidden states of the
    /// positions whose next token is a target are gathered first and only they go through the norm and the output
    /// projection. A classification example has 1–3 target tokens, so with Llama 3.1's 128,256-token vocabulary this
    /// skips nearly all of the [B, T, vocab] fp32 logits (4.2 GB at batch 16 × 512) and their gradient. Norm and
    /// projection act on each position alone, so the loss is the full computation's (<see cref="TokenLoss"/>).
    /// When there are more target rows than one chunk of logits holds (<see cref="ChunkedCrossEntropy"/>, 65 rows at
    /// 128,256 tokens), the projection and loss run chunk by chunk, keeping only the gradient w.r.t. the normed rows.
    /// </summary>
    /// <param name="rowsPerChunk">overrides <see cref="ChunkedCrossEntropy.RowsPerChunk"/> (tests force small chunks)</param>
    /// <param name="onChunk">told each chunk's row count when the chunked loss runs</param>
    internal static Tensor SupervisedLoss(LlamaModel model, SftCollator.Batch batch, long? rowsPerChunk = null, Action<long>? onChunk = null)
    {
        using var scope = NewDisposeScope();
        var h = batch.Packed
            ? model.Hidden(batch.InputIds, batch.Positions!, AttentionMask.Packed(batch.Segments!))
            : model.Hidden(batch.InputIds, batch.PadMask);
        return SupervisedLoss(model, h, batch.Labels, rowsPerChunk, onChunk).MoveToOuterDisposeScope();
    }

    /// <summary>The loss from hidden states [B, T, hidden] before the final norm.</summary>
    internal static Tensor SupervisedLoss(LlamaModel model, Tensor h, Tensor labels, long? rowsPerChunk = null, Action<long>? onChunk = null)
    {
        using var scope = NewDisposeScope();
        long t = h.shape[1];
        var wanted = labels.narrow(1, 1, t - 1).reshape(-1);
        var rows = nonzero(wanted.ne(TokenizedExample.IgnoreIndex)).squeeze(-1);
        var selected = h.narrow(1, 0, t - 1).reshape(-1, h.shape[2]).index_select(0, rows);
        var targets = wanted.index_select(0, rows);
        long chunk = rowsPerChunk ?? ChunkedCrossEntropy.RowsPerChunk(model.Config.VocabSize);
        // Up to one chunk of rows (every classification batch), or a head that is not a frozen dense matrix: the
        // projection as the model does it, bit for bit what it always was.
        if (selected.shape[0] <= chunk || model.DenseOutputWeight(selected.dtype) is not { } weight)
        {
            var logits = model.Head(selected.unsqueeze(0)).squeeze(0);
            return nn.functional.cross_entropy(logits, targets, reduction: nn.Reduction.Sum).MoveToOuterDisposeScope();
        }
        // the final norm stays under ordinary autograd; only the projection and the loss are chunked
        var normed = model.FinalNorm.forward(selected);
        return ChunkedCrossEntropy.Sum(normed, weight, targets, chunk, onChunk).MoveToOuterDisposeScope();
    }

    /// <summary>Summed cross-entropy of next-token predictions on target positions (labels ≠ -100), from full logits.</summary>
    internal static Tensor TokenLoss(Tensor logits, Tensor labels)
    {
        long t = logits.shape[1];
        var predicted = logits.narrow(1, 0, t - 1).reshape(-1, logits.shape[2]);
        var wanted = labels.narrow(1, 1, t - 1).reshape(-1);
        return nn.functional.cross_entropy(predicted, wanted, ignore_index: TokenizedExample.IgnoreIndex, reduction: nn.Reduction.Sum);
    }

    private double AllReduceSum(double value) => AllReduceSum(value, 0, 0).A;

    /// <summary>Three sums in one all-reduce (float64: token counts stay exact far beyond any run).</summary>
    private (double A, double B, double C) AllReduceSum(double a, double b, double c)
    {
        if (_comm.Size == 1) return (a, b, c);
        using var t = tensor(new[] { a, b, c }, ScalarType.Float64);
        _comm.AllReduceSum(t);
        var sums = t.data<double>().ToArray();
        return (sums[0], sums[1], sums[2]);
    }

    /// <summary>
    /// Stops a diverging run. Checkpoints from <paramref name="firstBadWeights"/> on hold the weights that diverged:
    /// they are renamed <c>checkpoint-N.diverged</c> (kept for inspection, never resumed from), and the message names
    /// the newest checkpoint before them, whose weights the following step's loss showed to be sound.
    /// </summary>
    private TrainingStoppedException Diverged(string what, int step, int firstBadWeights)
    {
        var all = TrainingCheckpoint.List(_config.Out);
        if (IsMain)
            foreach (var (s, path) in all.Where(x => x.Step >= firstBadWeights))
            {
                string aside = path + ".diverged";
                for (int n = 2; Path.Exists(aside); n++) aside = $"{path}.diverged{n}"; // an earlier divergence at the same step
                Directory.Move(path, aside);
            }
        var good = all.Where(x => x.Step < firstBadWeights).ToList();
        var resume = new ConfigField("resume");
        var lr = new ConfigField("lr");
        return new TrainingStoppedException(good.Count > 0
            ? UserInputException.About($"{what} at step {step}; stopping: the last good checkpoint is {good[^1].Path} (continue from it with {resume} and a lower {lr}); lower {lr} or check the data")
            : UserInputException.About($"{what} at step {step}; stopping: no checkpoint before it is good; lower {lr} or check the data"));
    }

    /// <summary>
    /// Loads the newest checkpoint that is complete and readable into <paramref name="model"/>; a damaged one (a
    /// truncated file, say) is reported and the one before it is tried. An adapter of another shape (rank, alpha,
    /// targets, DoRA/rsLoRA) than the config asks for is an error, not a fallback.
    /// </summary>
    private TrainingCheckpoint.Loaded ResumeFromLatest(LlamaModel model, LoraConfig lora)
    {
        var checkpoints = TrainingCheckpoint.List(_config.Out);
        for (int i = checkpoints.Count - 1; i >= 0; i--)
        {
            string path = checkpoints[i].Path;
            TrainingCheckpoint.CheckSameAdapter(path, lora);
            TrainingCheckpoint.Loaded? loaded = null;
            try
            {
                loaded = TrainingCheckpoint.Load(path, _comm.Rank, _comm.Size);
                PeftAdapterFiles.Load(loaded.AdapterDir, model, LoraLinear.DefaultAdapter);
                Log($"resuming from {path} (step {loaded.State.Step})");
                return loaded;
            }
            catch (Exception e) when (i > 0 && e is UserInputException or IOException)
            {
                loaded?.Dispose();
                Log($"warning: {path} is incomplete or damaged ({e.Message}); resuming from {checkpoints[i - 1].Path} instead");
            }
        }
        throw UserInputException.About($"resume: {_config.Out} has no complete checkpoint to resume from; drop {new ConfigField("resume")} to start a new run");
    }

    /// <summary>Training data in any supported format; chat data is rendered with the configured (or the model's) template.</summary>
    private TrainingData.Loaded ReadData(string path) => TrainingData.Read(path, DataFormats.Parse(_config.DataFormat, "data_format"),
        () => FinQLoRA.Data.Chat.ChatTemplateDetector.Resolve(_config.ChatTemplate, "chat_template", _config.Model));

    /// <summary>The name of the first tensor holding NaN or ±inf, or null.</summary>
    internal static string? FirstNonFinite(IEnumerable<(string Name, Tensor T)> tensors)
    {
        using var scope = NewDisposeScope();
        foreach (var (name, t) in tensors)
            if (t.is_floating_point() && !isfinite(t).all().item<bool>()) return name;
        return null;
    }

    /// <summary>LoRA's A is [r, in] and B is [out, r]: a rank above a projection's smaller side adds parameters
    /// without adding capacity (and makes huge adapters by mistake).</summary>
    private static void CheckRankFits(LlamaConfig model, TrainConfig c)
    {
        var targets = c.Targets;
        long smallest = targets.Min(t => Math.Min(LlamaLayout.Shape(model, t).In, LlamaLayout.Shape(model, t).Out));
        if (c.Rank > smallest)
            throw new UserInputException($"rank = {c.Rank} is larger than the smallest side ({smallest}) of the targeted projections of this model; choose rank <= {smallest}");
    }

    /// <summary>
    /// Evaluates, logs the result to the progress line, metrics.jsonl and
    /// TensorBoard, and keeps the best adapter in <c>best/</c> with <c>save_best</c>.
    /// </summary>
    /// <returns>whether early stopping says to stop, agreed by all ranks</returns>
    private bool EvaluateAndTrackBest(TrainingEvaluator evaluator, LlamaModel model, LoraConfig lora, int step, MetricsLog metrics,
        TrainingReporter reporter, BestCheckpoint best)
    {
        var result = evaluator.Evaluate(model, step);
        _lastEval = result;
        bool improved = best.Offer(result);
        Log(result.Format() + (improved ? $" | new best {_config.MetricForBest}" : ""));
        if (IsMain)
        {
            metrics.AppendEval(result);
            reporter.Eval(result);
            if (improved && _config.SaveBest)
                PeftAdapterFiles.Save(Path.Combine(_config.Out, BestCheckpoint.FolderName), model, lora, extraFiles: folder =>
                    File.WriteAllText(Path.Combine(folder, "best_eval.json"), result.ToJson().ToJsonString() + "\n"));
        }
        return AllReduceSum(best.ShouldStop ? 1 : 0) > 0;
    }

    private void SaveCheckpoint(LlamaModel model, LoraConfig lora, IAdapterOptimizer optimizer, List<(string Name, TorchSharp.Modules.Parameter P)> parameters,
        int step, int epoch, int nextBatch, double loss, BestCheckpoint best)
    {
        using var scope = NewDisposeScope();
        using var state = optimizer.StateDict();
        var others = new List<Dictionary<string, Tensor>>();
        if (_comm.Size > 1)
        {
            // See RankLocalState: an optimizer that communicates by itself keeps per-rank state and weights.
            var local = new Dictionary<string, Tensor> { [RankLocalState.RngKey] = get_rng_state() };
            if (optimizer.CommunicatesGradients)
            {
                foreach (var (name, t) in state.Tensors) local[RankLocalState.OptimizerPrefix + name] = t;
                foreach (var (name, p) in parameters) local[RankLocalState.ParameterPrefix + name] = p.detach();
            }
            others = RankLocalState.GatherToMain(_comm, local);
        }
        // Never write (or later name) a checkpoint that holds NaN or inf: it could not be resumed from.
        var named = parameters.Select(p => ("adapter " + p.Name, (Tensor)p.P)).Concat(state.Tensors.Select(kv => ("optimizer " + kv.Key, kv.Value)));
        if (FirstNonFinite(named) is { } bad) throw Diverged($"{bad} is not finite", step, firstBadWeights: step);
        if (!IsMain) return;
        var scalars = JsonSerializer.SerializeToNode(state.Scalars)!;
        TrainingCheckpoint.Save(_config.Out, new TrainingCheckpoint(step, epoch, nextBatch, loss, _comm.Size), model, lora,
            state.Tensors, scalars, _config.KeepCheckpoints, others, best.ToJson());
        _log($"saved checkpoint-{step}");
    }
}
