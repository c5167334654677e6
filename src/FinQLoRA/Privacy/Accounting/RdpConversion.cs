namespace FinQLoRA.Privacy.Accounting;

/// <summary>How Rényi DP at order α becomes (ε, δ)-DP.</summary>
public enum RdpConversion
{
    /// <summary>ε = RDP(α) + log(1/δ)/(α − 1) (Mironov 2017, proposition 3), as TF Privacy's early
    /// <c>compute_dp_sgd_privacy</c> printed it.</summary>
    Classical,
    /// <summary>ε = RDP(α) + log((α − 1)/α) − (log δ + log α)/(α − 1) (Balle et al. 2020, "Hypothesis testing
    /// interpretations and Rényi DP", theorem 21), as Opacus' <c>get_privacy_spent</c>: never larger than the classical.</summary>
    Tight,
}
