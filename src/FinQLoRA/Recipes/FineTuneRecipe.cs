using System.Diagnostics;
using FinQLoRA.Adapters;
using FinQLoRA.Data.Sft;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Distributed;
using FinQLoRA.Loading;
using FinQLoRA.Privacy;
using FinQLoRA.Privacy.Sampling;
using FinQLoRA.Runtime;
using FinQLoRA.Training;
using FinQLoRA.Training.Optimizers;
using FinQLoRA.Training.Schedules;
using static TorchSharp.torch;

namespace FinQLoRA.Recipes;

/// <summary>
/// <c>finqlora train</c>: supervised fine-tuning with QLoRA. Inputs are read and checked first; then the base loads
/// (quantized tensor by tensor), the target projections get LoRA adapters (fresh and seeded, or from the latest
/// checkpoint), and each optimizer step runs <c>grad_accum</c> micro-batches (<see cref="TrainingStep"/>), with
/// evaluation, checkpoints and early stopping between steps. The components live in <c>Training/</c>.
/// </summary>
public static class FineTuneRecipe
{
    /// <summary>The run as one rank of a launched job: the launcher's GPU unless the config names a CUDA device, and a
    /// failure on one rank ends every rank (<see cref="RankFailure"/>) instead of leaving them blocked.</summary>
    public static TrainResult Run(FineTuneOptions options, DistributedContext job)
    {
        var c = options.Config;
        if (job.Size > 1 && !c.Device.IsCuda && job.Device.type == TorchSharp.DeviceType.CUDA)
            c = c with { Device = ComputeDevice.From(job.Device) };
        try
        {
            return Run(options with { Config = c, Communicator = job.Communicator });
        }
        catch (Exception e) when (job.Size > 1 && e is not TrainingInterruptedException)
        {
            // every rank stops after the same step when interrupted (the step agrees on it): that is no failure
            RankFailure.AbortJob(job.Communicator, e, options.DescribeError);
            throw;
        }
    }

    public static TrainResult Run(FineTuneOptions options)
    {
        var c = options.Config;
        var comm = options.Communicator ?? new SingleProcessCommunicator();
        bool isMain = comm.Rank == 0;
        Action<string> log = isMain && options.Progress is { } progress ? progress : _ => { };
        var wall = Stopwatch.StartNew();
        manual_seed(c.Seed);
        TrainingHeap.Retain(); // every step frees and reallocates the same activations: keep their pages mapped

        // 1. Inputs, all read and checked before the model loads and before any progress line: output folder, data,
        //    tokenizer, the adapter's fit (from the model's config), the folder's lock and the checkpoint to resume;
        //    then the examples, batches and length of the run.
        RunFolder.Check(c);
        var inputs = FineTuneInputs.Read(c);
        var loadTimer = Stopwatch.StartNew();
        ITextTokenizer tokenizer = options.Tokenizer ?? ModelLoading.LoadTokenizer(c.Model);
        loadTimer.Stop();
        var family = TrainableModel.CheckAdapterFits(c);
        var lora = c.ToLoraConfig();
        var checkpoints = new RunCheckpoints(c.Out, c.KeepCheckpoints, comm, log);
        using var runFolder = RunFolder.Claim(c, isMain); // the lock: a second run on the same folder is refused here
        if (c.Resume) checkpoints.CheckResumable(lora, family);
        // What tokenizing and planning found is printed only once the last input check (the privacy settings of the
        // checkpoint to resume) has passed, so a refusal is the only line a refused run prints.
        var found = new List<string>(inputs.Summary);
        var sft = new SftTokenizer(tokenizer, c.MaxSeqLen);
        var examples = inputs.Tokenize(sft, c.Seed, found.Add, units: c.Dp);
        var evaluator = inputs.EvalTasks.Count > 0 ? new TrainingEvaluator(inputs.EvalTasks, sft, tokenizer, c, c.Device.ToTorch()) : null;
        if (sft.TruncatedPrompts > 0) found.Add($"warning: {sft.TruncatedPrompts} prompts were longer than max_seq_len {c.MaxSeqLen} and were cut from the left");
        if (sft.TruncatedTargets > 0) found.Add($"warning: {sft.TruncatedTargets} targets were cut to fit max_seq_len {c.MaxSeqLen}");
        // DP draws every step's units afresh (PrivateBatches); otherwise each epoch is a seeded order of batches.
        var batches = c.Dp ? null : TrainingBatches.Create(examples, c, comm.Size, found.Add);
        var privateBatches = c.Dp ? PrivateBatches.Create(examples, c, comm.Size) : null;
        int batchesPerEpoch = privateBatches?.BatchesPerEpoch ?? batches!.BatchesPerEpoch;
        var plan = TrainingPlan.For(c, batchesPerEpoch);
        if (plan.WarmupNote is { } note) found.Add(note);
        var privacy = privateBatches != null ? PrivacyPlan.For(c, privateBatches, plan.TotalSteps) : null;
        if (c.Resume) checkpoints.CheckResumablePrivacy(privacy?.Settings());
        foreach (string line in found.Concat(privacy?.Summary ?? [])) log(line);

        // 2. Base model, frozen; adapters fresh (seeded init) or from the latest checkpoint when resuming.
        loadTimer.Start();
        using var model = TrainableModel.LoadBase(c);
        double loadSeconds = loadTimer.Elapsed.TotalSeconds;
        var resume = c.Resume ? checkpoints.ResumeFromLatest(model, lora) : null;
        if (resume == null) LoraInjector.Apply(model, lora, c.Seed);
        log(LoraInjector.PrintTrainableParameters(model));
        var parameters = LoraInjector.AdapterParameters(model).ToList();
        if (resume is { RankParameters.Count: > 0 }) RunCheckpoints.LoadRankParameters(parameters, resume.RankParameters);

        // 3. Optimizer, schedule, and where the loop starts.
        using var communication = new TrainerCommunication(comm);
        using var optimizer = AdapterOptimizers.Create(c, parameters, communication);
        var schedule = new LrSchedule(c.LrSchedule, c.Lr, plan.WarmupSteps, plan.TotalSteps);
        var trainingStep = new TrainingStep(model, parameters, optimizer, comm, c.MaxGradNorm, tokenizer.PadId, c.Device.ToTorch(), options.Stop);
        var privateStep = privacy == null ? null : new PrivateTrainingStep(model, parameters, optimizer, comm,
            new PrivateStepSettings(privacy.NoiseMultiplier, c.DpMaxGradNorm, privateBatches!.ExpectedUnits, c.Seed), tokenizer.PadId, c.Device.ToTorch(), options.Stop);
        var (step, epoch, nextBatch) = resume != null ? RunCheckpoints.Restore(resume, optimizer, schedule) : (0, 0, 0);
        var metrics = new MetricsLog(c.Out, isMain, truncateAfterStep: step);
        var reporter = new TrainingReporter(c, isMain);
        var best = new BestCheckpoint(c.MetricForBest, c.EarlyStoppingPatience);
        if (resume != null) best.Load(resume.Best);
        var evaluation = evaluator != null ? new TrainingEvaluation(evaluator, best, c, comm, metrics, reporter, log) : null;
        if (evaluator != null) log($"evaluation: {evaluator.Count} held-out examples ({c.EvalData ?? $"{c.EvalSplit:P0} of the training data"}), every {(c.EvalEvery > 0 ? $"{c.EvalEvery} steps and " : "")}at the end");
        log($"training: {examples.Count} examples, {plan.TotalSteps} steps ({plan.StepsPerEpoch}/epoch), batch {c.BatchSize}x{c.GradAccum}x{comm.Size} ranks, {c.Bits}-bit base, rank {c.Rank}, {OptimizerKinds.Spellings.Name(c.Optimizer)}");

        // 4. The loop: one optimizer step, then its line, evaluation, checkpoint, and the reasons to stop.
        var meter = new ProgressMeter(comm, step);
        double lastLoss = resume?.State.LastLoss ?? double.NaN;
        var spikes = new LossSpikeDetector();
        if (resume != null) spikes.Check(lastLoss); // compare the first resumed steps with where the run was
        // A checkpoint holds the weights after its step; only the next step's loss shows whether they are sound, so
        // the newest checkpoint stays "unconfirmed" (and older ones are kept) until that loss has been seen.
        int? unconfirmed = null;
        int totalSteps = privacy?.StepCap ?? plan.TotalSteps;
        while (step < totalSteps)
        {
            var order = batches?.ForEpoch(epoch);
            while (step < totalSteps && nextBatch + c.GradAccum <= batchesPerEpoch)
            {
                var r = privateStep != null
                    ? privateStep.Run(privateBatches!.Micro(step, comm.Rank, comm.Size), step, schedule.CurrentLearningRate)
                    : trainingStep.Run(batches!.Micro(order!, nextBatch, c.GradAccum, comm.Rank, comm.Size), schedule.CurrentLearningRate);
                (nextBatch, step) = (nextBatch + c.GradAccum, step + 1);
                schedule.Advance();
                meter.Count(r.Tokens);
                if (spikes.Check(r.Loss) is { } diverged) throw checkpoints.Diverged(diverged, step, firstBadWeights: step - 1);
                if (unconfirmed is not null) checkpoints.Prune();
                (unconfirmed, lastLoss) = (null, r.Loss);
                if (step % c.LogEvery == 0 || step == totalSteps)
                {
                    var line = meter.Line(step, totalSteps, epoch + (double)nextBatch / batchesPerEpoch, r.Loss, schedule.LearningRateAt(step - 1))
                        with { Epsilon = privacy?.SpentAfter(step).Epsilon, DpStep = privacy != null ? (r.Units, r.ClippedFraction) : null };
                    metrics.Append(line);
                    reporter.Train(line, r.GradNorm);
                    log(line.Format());
                }
                bool earlyStop = evaluation != null && evaluation.IsDue(step, totalSteps) && evaluation.Evaluate(model, lora, step);
                var position = new TrainingCheckpoint(step, epoch, nextBatch, r.Loss, comm.Size);
                bool saved = false;
                if (c.SaveEvery > 0 && step % c.SaveEvery == 0 && step < totalSteps)
                {
                    checkpoints.Save(model, lora, optimizer, parameters, position, best, privacy?.Settings());
                    (saved, unconfirmed) = (true, step);
                }
                if (r.StopRequested && step < totalSteps)
                {
                    if (!saved) checkpoints.Save(model, lora, optimizer, parameters, position, best, privacy?.Settings());
                    throw new TrainingInterruptedException(step, Path.Combine(c.Out, TrainingCheckpoint.Prefix + step));
                }
                if (earlyStop)
                {
                    log(evaluation!.StopLine(step));
                    totalSteps = step;
                }
            }
            if (step < totalSteps) (epoch, nextBatch) = (epoch + 1, 0);
        }
        double trainSeconds = meter.Seconds;

        // 5. Final evaluation, adapter, run record.
        var finalEval = evaluation?.Final(model, lora, step);
        if (RunCheckpoints.FirstNonFinite(parameters.Select(p => (p.Name, (Tensor)p.P))) is { } badFinal)
            throw checkpoints.Diverged($"adapter tensor {badFinal} is not finite after the last step", step, firstBadWeights: step);
        checkpoints.Prune();
        (PeftAdapterInfo? info, System.Text.Json.Nodes.JsonObject? lineage) = (null, null);
        var privacyRecord = privacy?.Record(step);
        if (isMain) (info, lineage) = FinalAdapter.Write(c, model, lora, metrics, step, lastLoss, finalEval?.Loss, meter.TokensSeen, privacyRecord);
        var result = new TrainResult(step, lastLoss, finalEval?.Loss, trainSeconds, loadSeconds, meter.TokensSeen,
            MemoryUsage.PeakRssBytes, info?.AdapterBytes ?? 0, FinalAdapter.Folder(c), wall.Elapsed.TotalSeconds) { Privacy = privacy?.SpentAfter(step) };
        if (isMain) RunRecord.Write(c, result, Path.Combine(c.Out, RunRecord.FileName), comm.Size, lineage, finalEval, evaluation?.Best, plan.WarmupSteps, privacyRecord);
        comm.Barrier();
        return result;
    }
}
