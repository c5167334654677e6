using FinQLoRA.Training;
using FinQLoRA.Training.Optimizers;

namespace FinQLoRA.Privacy;

/// <summary>The DP keys of a train config, checked together (each key's own range is checked by <see cref="TrainKeys"/>).</summary>
public static class DpConfigCheck
{
    public static void Validate(TrainConfig c, string source)
    {
        if (!c.Dp)
        {
            // a DP setting without dp would train without the privacy the user asked for
            string? stray = c.DpNoiseMultiplier != null ? "dp_noise_multiplier" : c.DpTargetEpsilon != null ? "dp_target_epsilon"
                : c.DpMaxEpsilon != null ? "dp_max_epsilon" : c.DpDelta != null ? "dp_delta" : !c.DpUnit.IsExample ? "dp_unit" : null;
            if (stray != null) throw UserInputException.About($"{source}: {stray} is set but dp is off; add {new ConfigField("dp")} to train with differential privacy, or drop {new ConfigField(stray)}");
            return;
        }
        if ((c.DpNoiseMultiplier == null) == (c.DpTargetEpsilon == null))
            throw UserInputException.About($"{source}: dp needs exactly one of {new ConfigField("dp_noise_multiplier")} (the epsilon it spends is reported) and {new ConfigField("dp_target_epsilon")} (the noise is solved for it)");
        if (c.Optimizer == OptimizerKind.ZeroOneAdam)
            throw TrainKey.Invalid(source, "optimizer", "zero-one-adam", "adamw (or another optimizer that takes the noised gradient as it is) with dp: 0/1 Adam communicates its own compressed gradients");
        if (c.DpTargetEpsilon is double target && c.DpMaxEpsilon is double max && max < target)
            throw TrainKey.Invalid(source, "dp_max_epsilon", max, $"at least dp_target_epsilon = {target}");
    }
}
