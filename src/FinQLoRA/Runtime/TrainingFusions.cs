namespace FinQLoRA.Runtime;

/// <summary>
/// Whether the training step takes its fused paths (issue 26): malloc keeping freed pages (<see cref="TrainingHeap"/>),
/// RMSNorm and RoPE as one autograd node each, the LoRA branch added into the base output. FINQLORA_FUSED_STEP=off
/// restores the unfused step of before, op for op, so that <c>bench train</c> can show both in one run; the results
/// agree within bf16 rounding (tests compare them). Settable in code for tests and the bench.
/// </summary>
public static class TrainingFusions
{
    public const string Variable = "FINQLORA_FUSED_STEP";

    public static bool Enabled { get; set; } = Environment.GetEnvironmentVariable(Variable) is not { } v || !v.Equals("off", StringComparison.OrdinalIgnoreCase);
}
