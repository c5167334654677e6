using FinQLoRA.Models;
using FinQLoRA.Models.Families;

namespace FinQLoRA.Adapters;

/// <summary>
/// What a LoRA adapter looks like, with PEFT's meaning for every field (its <c>LoraConfig</c>):
/// rank r, <c>lora_alpha</c>, <c>lora_dropout</c>, <c>target_modules</c> (projection names such as q_proj, or
/// "all-linear" for every linear projection of the blocks, never lm_head; resolved against the model's family when the
/// adapter is put in: <see cref="ResolvedTargets"/>), <c>use_rslora</c>
/// (scaling α/√r instead of α/r) and <c>use_dora</c> (weight-decomposed LoRA).
/// <see cref="InitSeed"/> seeds the A matrices so that a run can be repeated exactly; <see cref="FreezeA"/> keeps them
/// there (FFA-LoRA), which PEFT's file has no key for.
/// </summary>
public sealed record LoraConfig
{
    // The LoRA defaults of FinQLoRA, written only here: the FinLoRA paper's 8B 4-bit setting (r 4, α 32, dropout 0.1
    // on q, k, v). A fine-tune's config (Training.TrainConfig) starts from them; a run that wants others names them.
    public const int DefaultRank = 4;
    public const double DefaultAlpha = 32;
    public const double DefaultDropout = 0.1;
    /// <summary>FinLoRA's q, k, v. A family that fuses them (Phi-3) has none of these names: there the targets are named
    /// (<c>qkv_proj</c>), as PEFT also needs them named for that model.</summary>
    public static IReadOnlyList<string> DefaultTargets { get; } = ["q_proj", "k_proj", "v_proj"];

    public int Rank { get; init; } = DefaultRank;
    public double Alpha { get; init; } = DefaultAlpha;
    /// <summary>0 (off) unless set: dropout acts only in training, and a fine-tune sets it from its config
    /// (<see cref="DefaultDropout"/> by default); an adapter read from PEFT files without lora_dropout has none.</summary>
    public double Dropout { get; init; }
    /// <summary>As PEFT's adapter_config.json lists them (module names or "all-linear"); <see cref="ResolvedTargets"/> gives
    /// the projections of a model family.</summary>
    public IReadOnlyList<string> TargetModules { get; init; } = DefaultTargets;
    public bool UseRsLora { get; init; }
    public bool UseDora { get; init; }
    public string? BaseModelNameOrPath { get; init; }
    public long InitSeed { get; init; }
    /// <summary>
    /// FFA-LoRA (Sun et al., ICLR 2024): A stays at its seeded init and only B trains, so ΔW = s·B·A is linear in the
    /// trained weights and adapters that share A average exactly (avg(Bᵢ)·A = avg(Bᵢ·A)). PEFT's adapter_config.json has
    /// no key for it (older PEFT versions refuse unknown keys), so FinQLoRA records it in lineage.json and run.json only.
    /// </summary>
    public bool FreezeA { get; init; }

    /// <summary>The factor s on the adapter branch: α/r, or α/√r with rsLoRA.</summary>
    public double Scaling => UseRsLora ? Alpha / Math.Sqrt(Rank) : Alpha / Rank;

    /// <summary>The target names expanded ("all-linear" → every projection of the family's blocks) and checked against
    /// the family; throws naming the family's modules for a name it lacks.</summary>
    public IReadOnlyList<ProjectionKind> ResolvedTargets(ModelFamily family, string source = "LoRA config") => LoraTargets.Resolve(TargetModules, family, source);

    /// <summary>Throws a one-line <see cref="UserInputException"/> for values PEFT would reject.</summary>
    public void Validate(string source = "LoRA config")
    {
        if (Rank <= 0) throw new UserInputException($"{source}: r = {Rank}; the rank must be a positive integer (FinLoRA uses 4 or 8)");
        if (!double.IsFinite(Alpha) || Alpha <= 0) throw new UserInputException($"{source}: lora_alpha = {Alpha}; it must be a positive number (FinLoRA uses 32)");
        if (!(Dropout >= 0 && Dropout < 1)) throw new UserInputException($"{source}: lora_dropout = {Dropout}; it must be in [0, 1)");
        LoraTargets.Parse(TargetModules, source);
        if (FreezeA && UseDora) throw FrozenAWithDora(source);
    }

    /// <summary>DoRA scales each row by m/‖W₀ + s·B·A‖, which is not linear in B: averaging FFA adapters would no longer
    /// be exact, the one thing frozen A is for, so the pair is refused rather than half supported.</summary>
    public static UserInputException FrozenAWithDora(string source) =>
        UserInputException.About($"{source}: {new ConfigField("lora_a_frozen")} true with {new ConfigField("use_dora")} true is refused; DoRA's row normalisation makes the weight non-linear in B, so frozen-A (FFA-LoRA) adapters would no longer average exactly; set one of them to false");
}
