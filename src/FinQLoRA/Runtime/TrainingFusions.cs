namespace FinQLoRA.Runtime;

/// <summary>
/// Whether the training step takes its fused paths (issue 26): malloc keeping freed pages (<see cref="TrainingHeap"/>),
/// RMSNorm and RoPE as one autograd node each. FINQLORA_FUSED_STEP=off restores the step of before, op for op, so that
/// <c>bench train --before true</c> can show both; outputs are bit-identical and gradients agree within bf16 rounding
/// (tests compare them). <see cref="Override"/> changes it for the calling thread only (tests, in parallel with others).
/// </summary>
public static class TrainingFusions
{
    public const string Variable = "FINQLORA_FUSED_STEP";

    [ThreadStatic] private static bool? _override;

    /// <summary>The process's setting: on unless the variable is "off".</summary>
    public static bool ProcessDefault { get; } = !string.Equals(Environment.GetEnvironmentVariable(Variable), "off", StringComparison.OrdinalIgnoreCase);

    public static bool Enabled => _override ?? ProcessDefault;

    /// <summary>Sets <see cref="Enabled"/> for this thread until the result is disposed (the forward reads it; a fused
    /// node's backward runs what its forward chose).</summary>
    public static IDisposable Override(bool enabled)
    {
        var previous = _override;
        _override = enabled;
        return new Restore(previous);
    }

    private sealed class Restore(bool? previous) : IDisposable
    {
        public void Dispose() => _override = previous;
    }
}
