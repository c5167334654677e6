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

    /// <param name="tokenizer">overrides the model folder's tokenizer (the demo uses one shipped in a NuGet package)</param>
    public SftTrainer(TrainConfig config, ICommunicator? communicator = null, Action<string>? log = null, ITextTokenizer? tokenizer = null)
    {
        _tokenizer = tokenizer;
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
        var dtype = ParseDType(c.Dtype);
        var device = c.Device == "cpu" ? CPU : new Device(c.Device);

        // 1. Base model, frozen and quantized as it loads.
        var loadOptions = new ModelLoadOptions { DType = dtype, Device = device }
            .WithBits(c.Bits, QuantizedLoading.ParseKind(c.Quant), c.DoubleQuant);
        var loadTimer = Stopwatch.StartNew();
        using var model = ModelLoader.Load(c.Model, loadOptions);
        ITextTokenizer tokenizer = _tokenizer ?? ModelBundle.LoadTokenizer(c.Model);
        double loadSeconds = loadTimer.Elapsed.TotalSeconds;
        model.GradientCheckpointing = c.GradCheckpointing;

        // 2. Adapters: fresh (seeded init) or from the latest checkpoint when resuming.
        var lora = new LoraConfig
        {
            Rank = c.Rank, Alpha = c.Alpha, Dropout = c.Dropout, TargetModules = LoraTargets.Resolve(c.Targets.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries), "targets"),
            UseRsLora = c.UseRslora, UseDora = c.UseDora, BaseModelNameOrPath = c.Model, InitSeed = c.Seed,
        };
        var checkpoints = TrainingCheckpoint.List(c.Out);
        TrainingCheckpoint.Loaded? resume = null;
        if (c.Resume && checkpoints.Count > 0)
        {
            resume = TrainingCheckpoint.Load(checkpoints[^1].Path, _comm.Rank, _comm.Size);
            PeftAdapterFiles.Load(resume.AdapterDir, model, LoraLinear.DefaultAdapter);
            Log($"resuming from {checkpoints[^1].Path} (step {resume.State.Step})");
        }
        else
        {
            if (checkpoints.Count > 0)
                throw new UserInputException($"{c.Out} already holds checkpoints; pass --resume to continue that run, or choose another --out");
            LoraInjector.Apply(model, lora, c.Seed);
        }
        Log(LoraInjector.PrintTrainableParameters(model));
        var parameters = LoraInjector.AdapterParameters(model).ToList();
        if (resume is { RankParameters.Count: > 0 }) LoadRankParameters(parameters, resume.RankParameters);

        // 3. Data: tokenized once; the batch order of each epoch is a pure function of (seed, epoch).
        var sft = new SftTokenizer(tokenizer, c.MaxSeqLen);
        var examples = ExampleJsonl.Read(c.Data).Select(sft.Tokenize).ToList();
        if (examples.Count == 0) throw new UserInputException($"{c.Data}: no examples; each line needs 'context' and 'target'");
        if (sft.TruncatedPrompts > 0) Log($"warning: {sft.TruncatedPrompts} prompts were longer than max_seq_len {c.MaxSeqLen} and were cut from the left");
        if (sft.TruncatedTargets > 0) Log($"warning: {sft.TruncatedTargets} targets were cut to fit max_seq_len {c.MaxSeqLen}");
        var lengths = examples.Select(e => e.Length).ToArray();
        int globalBatch = c.BatchSize * _comm.Size;
        int batchesPerEpoch = (examples.Count + globalBatch - 1) / globalBatch;
        int stepsPerEpoch = Math.Max(1, batchesPerEpoch / c.GradAccum);
        int totalSteps = c.MaxSteps > 0 ? c.MaxSteps : stepsPerEpoch * c.Epochs;

        // 4. Optimizer and schedule.
        using var communication = new TrainerCommunication(_comm);
        using IAdapterOptimizer optimizer = c.Optimizer == "zero-one-adam"
            ? new ZeroOneAdamOptimizer(parameters, communication, new ZeroOneAdamOptions(WeightDecay: c.WeightDecay,
                VarFreezeStep: c.VarFreezeStep, VarUpdateScaler: c.VarUpdateScaler, LocalStepScaler: c.LocalStepScaler, LocalStepClipper: c.LocalStepClipper))
            : new AdamWOptimizer(parameters, new AdamWOptions(WeightDecay: c.WeightDecay));
        var schedule = new LrSchedule(LrSchedule.Parse(c.LrSchedule), c.Lr, c.WarmupSteps, totalSteps);
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
        Log($"training: {examples.Count} examples, {totalSteps} steps ({stepsPerEpoch}/epoch), batch {c.BatchSize}x{c.GradAccum}x{_comm.Size} ranks, {c.Bits}-bit base, rank {c.Rank}, {c.Optimizer}");
        var trainTimer = Stopwatch.StartNew();
        long tokensSeen = 0, commBytesAtLastLine = _comm.BytesSent;
        int startStep = step, stepAtLastLine = step;
        double lastLoss = resume?.State.LastLoss ?? double.NaN;

        while (step < totalSteps)
        {
            var order = LengthGroupedBatches.ForEpoch(lengths, globalBatch, c.Seed, epoch, c.GroupByLength);
            while (step < totalSteps && nextBatch + c.GradAccum <= order.Length)
            {
                var micro = order.Skip(nextBatch).Take(c.GradAccum)
                    .Select(g => LengthGroupedBatches.Shard(g, _comm.Rank, _comm.Size).Select(i => examples[i]).ToList()).ToList();
                var (loss, tokens) = OptimizerStep(model, micro, optimizer, reducer, parameters, schedule.CurrentLearningRate, tokenizer.PadId, device);
                nextBatch += c.GradAccum;
                schedule.Advance();
                step++;
                tokensSeen += tokens;
                if (!double.IsFinite(loss))
                {
                    string last = TrainingCheckpoint.List(c.Out) is { Count: > 0 } l ? l[^1].Path : "none";
                    throw new TrainingStoppedException($"loss became {loss} at step {step}; stopping. The last good checkpoint is {last}; lower --lr or check the data");
                }
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
                    Log(line.Format());
                }
                if (c.SaveEvery > 0 && step % c.SaveEvery == 0 && step < totalSteps)
                    SaveCheckpoint(model, lora, optimizer, parameters, step, epoch, nextBatch, loss);
            }
            if (step < totalSteps) { epoch++; nextBatch = 0; }
        }
        double trainSeconds = trainTimer.Elapsed.TotalSeconds;

        // 5. Final adapter, evaluation loss, run record, plot.
        double? evalLoss = c.EvalData != null ? EvaluateLoss(model, ExampleJsonl.Read(c.EvalData).Select(sft.Tokenize).ToList(), tokenizer.PadId, device) : null;
        string adapterDir = Path.Combine(c.Out, "adapter");
        PeftAdapterInfo? info = null;
        if (IsMain)
        {
            info = PeftAdapterFiles.Save(adapterDir, model, lora);
            metrics.WritePlot(Path.Combine(c.Out, "loss.png"));
        }
        var result = new TrainResult(step, lastLoss, evalLoss, trainSeconds, loadSeconds, tokensSeen,
            MemoryUsage.PeakRssBytes, info?.AdapterBytes ?? 0, adapterDir, wall.Elapsed.TotalSeconds);
        if (IsMain) RunRecord.Write(c, result, Path.Combine(c.Out, "run.json"), _comm.Size);
        _comm.Barrier();
        return result;
    }

    /// <returns>the step's loss (mean over its target tokens) and the tokens it trained on, both over all ranks</returns>
    private (double Loss, long Tokens) OptimizerStep(LlamaModel model, List<List<TokenizedExample>> micro, IAdapterOptimizer optimizer,
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
            var logits = model.Forward(batch.InputIds, batch.PadMask);
            var sum = TokenLoss(logits, batch.Labels);
            (sum * (_comm.Size / Math.Max(globalTargets, 1))).backward();
            lossSum += sum.item<float>();
            tokens += batch.Tokens;
        }
        // A rank whose shard of a short last batch is empty has no gradient yet at its first step; give it zeros so
        // it joins the all-reduce with the same tensors as the others (and 0/1 Adam finds a gradient everywhere).
        if (parameters.Any(p => p.P.grad is null)) MaterialiseZeroGradients(parameters);
        if (!optimizer.CommunicatesGradients && _comm.Size > 1)
            reducer.AllReduceAverage(parameters.Select(p => p.P.grad ?? zeros_like(p.P)).ToList());
        if (_config.MaxGradNorm > 0) GradientClipping.ClipGradNorm(parameters.Select(p => p.P), _config.MaxGradNorm);
        optimizer.Step(lr);
        optimizer.ZeroGrad();
        var (globalLoss, globalTokens) = AllReduceSum(lossSum, tokens);
        return (globalLoss / Math.Max(globalTargets, 1), (long)globalTokens);
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

    /// <summary>Summed cross-entropy of next-token predictions on target positions (labels ≠ -100).</summary>
    internal static Tensor TokenLoss(Tensor logits, Tensor labels)
    {
        long t = logits.shape[1];
        var predicted = logits.narrow(1, 0, t - 1).reshape(-1, logits.shape[2]);
        var wanted = labels.narrow(1, 1, t - 1).reshape(-1);
        return nn.functional.cross_entropy(predicted, wanted, ignore_index: TokenizedExample.IgnoreIndex, reduction: nn.Reduction.Sum);
    }

    private double AllReduceSum(double value) => AllReduceSum(value, 0).A;

    /// <summary>Two sums in one all-reduce (float64: token counts stay exact far beyond any run).</summary>
    private (double A, double B) AllReduceSum(double a, double b)
    {
        if (_comm.Size == 1) return (a, b);
        using var t = tensor(new[] { a, b }, ScalarType.Float64);
        _comm.AllReduceSum(t);
        var sums = t.data<double>().ToArray();
        return (sums[0], sums[1]);
    }

    private double EvaluateLoss(LlamaModel model, List<TokenizedExample> examples, int padId, Device device)
    {
        model.eval();
        using var noGrad = no_grad();
        double sum = 0, count = 0;
        foreach (var chunk in examples.Chunk(_config.BatchSize))
        {
            using var scope = NewDisposeScope();
            using var batch = SftCollator.Collate(chunk, padId, device);
            sum += TokenLoss(model.Forward(batch.InputIds, batch.PadMask), batch.Labels).item<float>();
            count += chunk.Sum(e => e.Labels.Skip(1).Count(l => l != TokenizedExample.IgnoreIndex));
        }
        model.train();
        return sum / Math.Max(count, 1);
    }

    private void SaveCheckpoint(LlamaModel model, LoraConfig lora, IAdapterOptimizer optimizer, List<(string Name, TorchSharp.Modules.Parameter P)> parameters,
        int step, int epoch, int nextBatch, double loss)
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
        if (!IsMain) return;
        var scalars = JsonSerializer.SerializeToNode(state.Scalars)!;
        TrainingCheckpoint.Save(_config.Out, new TrainingCheckpoint(step, epoch, nextBatch, loss, _comm.Size), model, lora,
            state.Tensors, scalars, _config.KeepCheckpoints, others);
        _log($"saved checkpoint-{step}");
    }

    internal static ScalarType ParseDType(string d) => d switch
    {
        "bf16" => ScalarType.BFloat16,
        "f16" or "fp16" => ScalarType.Float16,
        _ => ScalarType.Float32,
    };
}
