using FinQLoRA.Data.Sft;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Distributed;
using FinQLoRA.Models;
using FinQLoRA.Training.Optimizers;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FinQLoRA.Training;

/// <summary>
/// One optimizer step of supervised fine-tuning: forward and loss for each of <c>grad_accum</c> micro-batches,
/// backward, average the gradients across data-parallel ranks, clip, step. The loss is normalised by the number of
/// target tokens in the whole global step (all micro-batches, all ranks), so that N ranks with batch b give the same
/// update as one rank with batch N·b.
/// </summary>
public sealed class TrainingStep(DecoderModel model, IReadOnlyList<(string Name, Parameter P)> parameters, IAdapterOptimizer optimizer,
    ICommunicator comm, double maxGradNorm, int padId, Device device, CancellationToken stop)
{
    private readonly GradientAllReducer _reducer = new(comm);

    public StepResult Run(IReadOnlyList<List<TokenizedExample>> micro, double lr)
    {
        // Normalise by the target tokens of the whole global step, so ranks and micro-batches add up exactly.
        long localTargets = micro.Sum(m => m.Sum(e => e.Labels.Skip(1).Count(l => l != TokenizedExample.IgnoreIndex)));
        double globalTargets = RankSums.Of(comm, localTargets);
        double lossSum = 0;
        long tokens = 0;
        model.train();
        foreach (var examples in micro)
        {
            if (examples.Count == 0) continue;
            using var scope = NewDisposeScope();
            using var batch = SftCollator.Collate(examples, padId, device);
            var sum = SupervisedLoss.Sum(model, batch);
            (sum * (comm.Size / Math.Max(globalTargets, 1))).backward();
            lossSum += sum.item<float>();
            tokens += batch.Tokens;
        }
        // A rank whose shard of a short last batch is empty has no gradient yet at its first step; give it zeros so
        // it joins the all-reduce with the same tensors as the others (and 0/1 Adam finds a gradient everywhere).
        if (parameters.Any(p => p.P.grad is null)) MaterialiseZeroGradients();
        if (!optimizer.CommunicatesGradients && comm.Size > 1)
            _reducer.AllReduceAverage(parameters.Select(p => p.P.grad ?? zeros_like(p.P)).ToList());
        double gradNorm = maxGradNorm > 0 ? GradientClipping.ClipGradNorm(parameters.Select(p => p.P), maxGradNorm) : double.NaN;
        optimizer.Step(lr);
        optimizer.ZeroGrad();
        var (globalLoss, globalTokens, stops) = RankSums.Of(comm, lossSum, tokens, stop.IsCancellationRequested ? 1 : 0);
        return new StepResult(globalLoss / Math.Max(globalTargets, 1), (long)globalTokens, stops > 0, gradNorm);
    }

    private void MaterialiseZeroGradients()
    {
        using var scope = NewDisposeScope();
        parameters.Select(p => p.P.sum() * 0).Aggregate((a, b) => a + b).backward();
    }
}
