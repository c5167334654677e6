namespace FinQLoRA.Privacy.Accounting;

/// <summary>What the PRV accountant knows of ε at δ: the true ε lies in [<paramref name="Lower"/>, <paramref name="Upper"/>]
/// (Gopi et al. 2021, theorem 5.5); <paramref name="Estimate"/> is the discretised distribution's own ε. The accountant
/// reports <paramref name="Upper"/>: a guarantee, not a guess.</summary>
public sealed record PrvEpsilon(double Lower, double Estimate, double Upper);
