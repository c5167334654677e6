using FinQLoRA.Data.Sft;
using FinQLoRA.Distributed;
using FinQLoRA.Models;
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

/// <summary>CONTRACT (filled in by the per-unit gradient work): one DP-SGD optimizer step over this rank's micro-batches.</summary>
public sealed class PrivateTrainingStep(DecoderModel model, IReadOnlyList<(string Name, Parameter P)> parameters, IAdapterOptimizer optimizer,
    ICommunicator comm, PrivateStepSettings settings, int padId, Device device, CancellationToken stop)
{
    /// <summary>Rows carry their unit (<see cref="TokenizedExample.Unit"/>, or <see cref="TokenizedExample.SegmentUnits"/>
    /// when packed); a unit's examples may span micro-batches but never ranks.</summary>
    public StepResult Run(IReadOnlyList<List<TokenizedExample>> micro, long step, double lr) =>
        throw new NotImplementedException($"{model}{parameters}{optimizer}{comm}{settings}{padId}{device}{stop}{micro}{step}{lr}");
}
