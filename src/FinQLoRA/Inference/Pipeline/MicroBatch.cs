using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Inference.Pipeline;

/// <summary>What one stage keeps for one micro-batch between steps: its rows, its padding mask (which grows by one
/// column per decode step), and its slice of the KV cache. Stage 0 also tracks the sequences' progress and the next
/// ids to feed; the last stage holds the micro-batch's sampler.</summary>
internal sealed class MicroBatch : IDisposable
{
    public MicroBatch(int[] rows, IReadOnlyList<int> lengths, KvCache cache)
    {
        Rows = rows;
        Longest = lengths.Max();
        PadMask = tensor(LeftPadding.Mask(lengths), [rows.Length, Longest]).DetachFromDisposeScope();
        Cache = cache;
    }

    /// <summary>Indices of this micro-batch's prompts in the request.</summary>
    public int[] Rows { get; }
    public int Size => Rows.Length;
    public int Longest { get; }
    /// <summary>[B, past + T] on the CPU: 1 for real tokens, 0 for left padding.</summary>
    public Tensor PadMask { get; private set; }
    public KvCache Cache { get; }
    public GenerationProgress? Progress { get; init; }
    public TokenSampler? Sampler { get; init; }
    /// <summary>Stage 0: the ids to embed at the next decode step.</summary>
    public long[]? NextFeed { get; set; }

    /// <summary>Tokens this step feeds: the padded prompts at step 0, one per row afterwards.</summary>
    public int StepLength(int step) => step == 0 ? Longest : 1;

    /// <summary>Positions and the additive attention mask for <paramref name="step"/>; a decode step first extends
    /// the padding mask by one real column, as the single-process generator does.</summary>
    public (Tensor Positions, Tensor Mask) Attention(int step, Device device)
    {
        if (step > 0)
        {
            var grown = cat([PadMask, ones([Size, 1], ScalarType.Int64)], 1).DetachFromDisposeScope();
            PadMask.Dispose();
            PadMask = grown;
        }
        long t = StepLength(step), past = Cache.Length;
        var padMask = PadMask.to(device);
        return (AttentionMask.Positions(padMask, Size, t, past, device), AttentionMask.Build(padMask, Size, t, past, device));
    }

    public void Dispose()
    {
        PadMask.Dispose();
        Cache.Dispose();
        Sampler?.Dispose();
    }
}
