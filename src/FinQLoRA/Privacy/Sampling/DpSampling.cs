using FinQLoRA.Options;

namespace FinQLoRA.Privacy.Sampling;

/// <summary>How a DP-SGD step picks its units (the train config's <c>dp_sampling</c>).</summary>
public enum DpSampling
{
    /// <summary>Every unit joins each step independently with probability q: what the accountants assume.</summary>
    Poisson,
    /// <summary>A seeded shuffle cut into batches of the expected size: the usual data loader, with the guarantee only approximate.</summary>
    Shuffle,
}

public static class DpSamplings
{
    public static NamedValues<DpSampling> Spellings { get; } = new((DpSampling.Poisson, ["poisson"]), (DpSampling.Shuffle, ["shuffle"]));
}
