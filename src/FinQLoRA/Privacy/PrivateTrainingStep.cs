using FinQLoRA.Data.Sft;
using FinQLoRA.Distributed;
using FinQLoRA.Models;
using FinQLoRA.Privacy.PerUnitGradients;
using FinQLoRA.Training;
using FinQLoRA.Training.Optimizers;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FinQLoRA.Privacy;

/// <summary>The DP-SGD settings one step needs.</summary>
/// <param name="NoiseMultiplier">σ: the noise's standard deviation is σ·C</param>
/// <param name="MaxGradNorm">C: every unit's gradient (all adapter parameters jointly) is clipped to this ℓ2 norm</param>
/// <param name="ExpectedUnits">q·N over all ranks: the noisy sum is divided by it</param>
/// <param name="Seed">the noise of step t is drawn from (Seed, t), so a resumed run adds the same noise</param>
public sealed record PrivateStepSettings(double NoiseMultiplier, double MaxGradNorm, double ExpectedUnits, long Seed);

/// <summary>
/// One DP-SGD optimizer step (Abadi et al. 2016; Opacus; dp-transformers) over this rank's micro-batches:
/// <list type="number">
/// <item>each micro-batch: one forward and one backward of Σ over examples of their MEAN target-token loss, with the
/// LoRA projections recording what exact per-unit gradients need (<see cref="PerUnitGradientComputer"/>);</item>
/// <item>a unit's gradient is summed over its examples in every micro-batch, then clipped jointly over all adapter
/// parameters to ℓ2 norm C and added to the step's sum (<see cref="UnitClipping"/>);</item>
/// <item>rank 0 adds N(0, σ²C²) per coordinate from the (seed, step) stream (<see cref="GradientNoise"/>), the ranks'
/// sums are added, divided by the expected number of units, and the optimizer steps.</item>
/// </list>
/// There is no global max_grad_norm clip: the per-unit clip is the clip. Gradient checkpointing works (a checkpointed
/// layer is recorded by its recomputation). 0/1 Adam is refused: it compresses and exchanges gradients itself, which
/// would add its error feedback to the noised sum and break the mechanism's sensitivity.
/// </summary>
public sealed class PrivateTrainingStep
{
    private readonly DecoderModel _model;
    private readonly IReadOnlyList<(string Name, Parameter P)> _parameters;
    private readonly IAdapterOptimizer _optimizer;
    private readonly ICommunicator _comm;
    private readonly PrivateStepSettings _settings;
    private readonly int _padId;
    private readonly Device _device;
    private readonly CancellationToken _stop;

    public PrivateTrainingStep(DecoderModel model, IReadOnlyList<(string Name, Parameter P)> parameters, IAdapterOptimizer optimizer,
        ICommunicator comm, PrivateStepSettings settings, int padId, Device device, CancellationToken stop)
    {
        if (optimizer.CommunicatesGradients)
            throw UserInputException.About($"{new ConfigField("optimizer")} zero-one-adam compresses and exchanges gradients itself, which differentially private training cannot noise; use {new ConfigField("optimizer")} adamw");
        if (!(settings.MaxGradNorm > 0) || double.IsInfinity(settings.MaxGradNorm))
            throw new ArgumentOutOfRangeException(nameof(settings), settings.MaxGradNorm, "the clipping norm C must be positive and finite");
        if (!(settings.NoiseMultiplier >= 0)) throw new ArgumentOutOfRangeException(nameof(settings), settings.NoiseMultiplier, "σ must be ≥ 0");
        if (!(settings.ExpectedUnits > 0)) throw new ArgumentOutOfRangeException(nameof(settings), settings.ExpectedUnits, "the expected units per step must be positive");
        (_model, _parameters, _optimizer, _comm, _settings, _padId, _device, _stop) = (model, parameters, optimizer, comm, settings, padId, device, stop);
    }

    /// <summary>Overrides the loss's logit chunk size (tests force small chunks).</summary>
    internal long? RowsPerChunk { get; init; }

    /// <summary>Rows carry their unit (<see cref="TokenizedExample.Unit"/>, or <see cref="TokenizedExample.SegmentUnits"/>
    /// when packed); a unit's examples may span micro-batches but never ranks.</summary>
    public StepResult Run(IReadOnlyList<List<TokenizedExample>> micro, long step, double lr)
    {
        using var scope = NewDisposeScope();
        _model.train();
        using var clipping = new UnitClipping([.. _parameters.Select(p => (Tensor)p.P)], _settings.MaxGradNorm);
        var (lossSum, tokens, examples) = ForEachUnit(micro, (_, grads) => clipping.Add(grads));

        // σC noise once in total: on rank 0 only, before the ranks' clipped sums are added up
        if (_comm.Rank == 0) GradientNoise.Add(clipping.Sum, _settings.NoiseMultiplier, _settings.MaxGradNorm, _settings.Seed, step);
        SumOverRanks(clipping.Sum);
        if (_parameters.Any(p => p.P.grad is null)) MaterialiseGradients();
        using (no_grad())
            for (int i = 0; i < _parameters.Count; i++)
                _parameters[i].P.grad!.copy_(clipping.Sum[i].div(_settings.ExpectedUnits));
        _optimizer.Step(lr);
        _optimizer.ZeroGrad();

        var (globalLoss, globalExamples, globalTokens) = RankSums.Of(_comm, lossSum, examples, tokens);
        var (units, clipped, stops) = RankSums.Of(_comm, clipping.Units, clipping.Clipped, _stop.IsCancellationRequested ? 1 : 0);
        return new StepResult(globalLoss / Math.Max(globalExamples, 1), (long)globalTokens, stops > 0, double.NaN)
        {
            Units = (long)units,
            ClippedFraction = units > 0 ? clipped / units : 0,
        };
    }

    /// <summary>Every unit's raw (unclipped) gradient over this rank's micro-batches, one tensor per parameter, for
    /// tests to compare with batch-1 backward passes; the caller owns the tensors. Parameters' .grad is left zeroed.</summary>
    internal Dictionary<int, Tensor[]> UnitGradients(IReadOnlyList<List<TokenizedExample>> micro)
    {
        var result = new Dictionary<int, Tensor[]>();
        ForEachUnit(micro, (units, grads) =>
        {
            for (int k = 0; k < units.Length; k++)
                result[units[k]] = [.. grads.Select(g =>
                {
                    var copy = g[k].clone();
                    copy.DetachFromDisposeScope();
                    return copy;
                })];
        });
        _optimizer.ZeroGrad();
        return result;
    }

    /// <summary>Runs the micro-batches and hands on each unit's gradient once its last micro-batch is done; returns the
    /// loss (Σ over examples of their mean token loss), tokens and examples of this rank.</summary>
    private (double Loss, long Tokens, long Examples) ForEachUnit(IReadOnlyList<List<TokenizedExample>> micro, Action<int[], Tensor[]> onUnits)
    {
        var layouts = micro.Select(m => m.Count == 0 ? [] : UnitLayout.Of(m).Units).ToList();
        using var adapters = new CapturedAdapters(_model, _parameters);
        using var accumulator = new UnitGradientAccumulator(layouts, onUnits);
        double loss = 0;
        long tokens = 0, examples = 0;
        for (int m = 0; m < micro.Count; m++)
        {
            if (micro[m].Count == 0) continue;
            using var microScope = NewDisposeScope();
            using var gradients = PerUnitGradientComputer.Run(_model, adapters, _parameters, micro[m], _padId, _device, RowsPerChunk);
            accumulator.Add(m, gradients);
            loss += gradients.LossSum;
            tokens += gradients.Tokens;
            examples += gradients.Examples;
        }
        if (accumulator.Pending > 0) throw new InvalidOperationException($"{accumulator.Pending} units were never completed");
        return (loss, tokens, examples);
    }

    /// <summary>Adds the ranks' noised sums in place (one flat float32 all-reduce).</summary>
    private void SumOverRanks(Tensor[] sums)
    {
        if (_comm.Size == 1 || sums.Length == 0) return;
        using var scope = NewDisposeScope();
        var flat = cat([.. sums.Select(s => s.reshape(-1))], 0);
        _comm.AllReduceSum(flat);
        long offset = 0;
        foreach (var s in sums)
        {
            s.copy_(flat.narrow(0, offset, s.numel()).view_as(s));
            offset += s.numel();
        }
    }

    /// <summary>A rank with no example this step (or a parameter no target reached) still needs a .grad to write into.</summary>
    private void MaterialiseGradients()
    {
        using var scope = NewDisposeScope();
        _parameters.Select(p => p.P.sum() * 0).Aggregate((a, b) => a + b).backward();
    }
}
