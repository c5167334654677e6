namespace FinQLoRA.Data.Sft;

/// <summary>Token ids of prompt + target + EOS, and the labels: -100 (ignored) on the prompt, the ids on the target
/// and its EOS, so the loss is on what the model must produce and on stopping. A packed row (<see cref="SamplePacking"/>)
/// holds several examples back to back; <see cref="SegmentStarts"/> says where each begins.</summary>
public sealed record TokenizedExample(int[] InputIds, int[] Labels)
{
    public const int IgnoreIndex = -100;
    public int Length => InputIds.Length;

    /// <summary>Where each example of a packed row starts (the first is 0); null for a single example.</summary>
    public int[]? SegmentStarts { get; init; }

    /// <summary>The privacy unit this example belongs to (differentially private training: the example itself, or all
    /// examples of one customer); -1 when the run has no units.</summary>
    public int Unit { get; init; } = -1;

    /// <summary>The unit of each example of a packed row, in <see cref="SegmentStarts"/>' order; null for a single example.</summary>
    public int[]? SegmentUnits { get; init; }
}
