using System.Globalization;
using System.Text.Json.Nodes;
using FinQLoRA.Privacy.Accounting;
using FinQLoRA.Privacy.Sampling;
using FinQLoRA.Training;

namespace FinQLoRA.Privacy;

/// <summary>
/// The privacy of one DP-SGD run, fixed before the model loads: the sample rate q = E/N, the noise multiplier σ (given,
/// or solved so that the planned steps spend <c>dp_target_epsilon</c>), δ (default 1/N), the clipping norm C and the
/// last step <c>dp_max_epsilon</c> allows. ε after any number of steps comes from the same accountant
/// <c>finqlora privacy</c> and <c>verify</c> use, so the three always agree.
/// </summary>
public sealed class PrivacyPlan
{
    private readonly Dictionary<int, PrivacySpent> _spent = [];

    private PrivacyPlan(TrainConfig c, PrivateBatches batches, double noiseMultiplier, double delta)
    {
        (Config, Batches, NoiseMultiplier, Delta) = (c, batches, noiseMultiplier, delta);
    }

    public TrainConfig Config { get; }
    public PrivateBatches Batches { get; }
    public double NoiseMultiplier { get; }
    public double Delta { get; }
    public double SampleRate => Batches.SampleRate;

    /// <summary>The last step <c>dp_max_epsilon</c> allows; null without a cap.</summary>
    public int? StepCap { get; private init; }

    /// <summary>What was decided, one line each, for the progress log.</summary>
    public IReadOnlyList<string> Summary { get; private init; } = [];

    /// <param name="plannedSteps">the run's steps before any ε cap (from epochs or max_steps)</param>
    public static PrivacyPlan For(TrainConfig c, PrivateBatches batches, int plannedSteps)
    {
        double delta = c.DpDelta ?? 1.0 / batches.Units;
        double q = batches.SampleRate;
        var lines = new List<string>();
        double sigma = c.DpNoiseMultiplier ?? PrivacyAccountant.NoiseMultiplierFor(c.DpAccountant, c.DpTargetEpsilon!.Value, q, plannedSteps, delta);
        string unit = c.DpUnit.IsExample ? "example" : $"unit (value of '{c.DpUnit.Field}')";
        lines.Add(Invariant($"dp: {batches.Units} units ({unit}), q = {q:G4} ({batches.ExpectedUnits:G4} units per step on average, {DpSamplings.Spellings.Name(c.DpSampling)} sampling), C = {c.DpMaxGradNorm:G4}, δ = {delta:G4}{(c.DpDelta == null ? " (1/N)" : "")}, {AccountantKinds.Spellings.Name(c.DpAccountant)} accountant"));
        if (c.DpTargetEpsilon is double target) lines.Add(Invariant($"dp: noise multiplier σ = {sigma:G6}, solved so that {plannedSteps} steps spend ε ≤ {target:G4}"));
        if (c.MaxGradNorm > 0) lines.Add("dp: max_grad_norm is not applied: each unit's gradient is clipped to dp_max_grad_norm instead");
        if (c.DpSampling == DpSampling.Shuffle) lines.Add("warning: dp_sampling = shuffle: batches are fixed-size shuffles, not the Poisson sampling the accountant assumes; the reported ε is then approximate");
        if (batches.ExpectedUnits >= batches.Units) lines.Add("warning: every unit is in every step (q = 1): sampling gives no privacy amplification; use a smaller batch for a better ε");
        int? cap = null;
        if (c.DpMaxEpsilon is double max)
        {
            long allowed = PrivacyAccountant.MaxSteps(c.DpAccountant, max, q, sigma, delta);
            if (allowed < 1)
                throw UserInputException.About($"{new ConfigField("dp_max_epsilon")} = {max.ToString(CultureInfo.InvariantCulture)}: one step at σ = {sigma:G4} and q = {q:G4} already spends more; raise the cap, the noise ({new ConfigField("dp_noise_multiplier")}) or lower the batch");
            if (allowed < plannedSteps)
            {
                cap = (int)allowed;
                lines.Add(Invariant($"dp: stopping after step {cap} of {plannedSteps}: step {cap + 1} would spend more than dp_max_epsilon = {max:G4}"));
            }
        }
        return new PrivacyPlan(c, batches, sigma, delta) { StepCap = cap, Summary = lines };
    }

    /// <summary>ε spent after <paramref name="steps"/> steps (computed once per step count).</summary>
    public PrivacySpent SpentAfter(int steps)
    {
        if (!_spent.TryGetValue(steps, out var spent))
            _spent[steps] = spent = PrivacyAccountant.Epsilon(Config.DpAccountant, SampleRate, NoiseMultiplier, steps, Delta);
        return spent;
    }

    /// <summary>The settings a resumed run must keep (anything else would change what the spent ε means).</summary>
    public JsonObject Settings() => new()
    {
        ["accountant"] = AccountantKinds.Spellings.Name(Config.DpAccountant),
        ["unit"] = Config.DpUnit.ToString(),
        ["sampling"] = DpSamplings.Spellings.Name(Config.DpSampling),
        ["units"] = Batches.Units,
        ["expected_units_per_step"] = Batches.ExpectedUnits,
        ["sample_rate"] = SampleRate,
        ["noise_multiplier"] = NoiseMultiplier,
        ["max_grad_norm"] = Config.DpMaxGradNorm,
        ["delta"] = Delta,
        ["target_epsilon"] = Config.DpTargetEpsilon,
        ["max_epsilon"] = Config.DpMaxEpsilon,
    };

    /// <summary>The record run.json, lineage.json and the model card carry: the settings, the steps and the ε they spent.</summary>
    public JsonObject Record(int steps)
    {
        var spent = SpentAfter(steps);
        var o = Settings();
        o["steps"] = steps;
        o["epsilon"] = spent.Epsilon;
        if (spent.OptimalOrder is double order) o["optimal_order"] = order;
        return o;
    }

    /// <summary>Refuses to resume a checkpoint made with other privacy settings (or with DP on one side only), naming the first difference.</summary>
    public static void CheckSame(JsonObject? recorded, JsonObject? now, string checkpoint)
    {
        if (recorded is null && now is null) return;
        if (recorded is null || now is null)
            throw UserInputException.About($"resume: {checkpoint} was made {(recorded is null ? "without" : "with")} dp; resume it with the same {new ConfigField("dp")} setting, or start a new run in another out folder");
        foreach (var (key, value) in recorded)
        {
            if (JsonNode.DeepEquals(value, now[key])) continue;
            throw UserInputException.About($"resume: {checkpoint} was trained with dp {key} = {value?.ToJsonString() ?? "null"}, this run has {now[key]?.ToJsonString() ?? "null"}; a changed privacy setting would make the spent ε meaningless: resume with the checkpoint's settings, or start a new run in another out folder");
        }
    }

    private static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
