using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Serving;

/// <summary>The masks the serving <c>ModelRunner</c> takes from <see cref="AttentionMask"/>, against masks written out
/// by hand: right-padded prefill, one chunk of a long prompt after earlier chunks, and a decode step of rows of
/// different lengths.</summary>
public sealed class ServingMaskTests
{
    private const float M = float.MinValue;

    private static float[] Values(Tensor t) => t.cpu().data<float>().ToArray();

    [Fact]
    public void RightPaddingMarksThePositionsBelowEachLength()
    {
        using var scope = NewDisposeScope();
        var pad = AttentionMask.RightPadding(tensor(new long[] { 2, 0, 3 }), 3);
        Assert.Equal([3L, 3L], pad.shape);
        Assert.Equal([true, true, false, false, false, false, true, true, true], pad.data<bool>().ToArray());
    }

    [Fact]
    public void PrefillOfRightPaddedPromptsIsCausalWithinEachLength()
    {
        using var scope = NewDisposeScope();
        var mask = AttentionMask.Build(AttentionMask.RightPadding(tensor(new long[] { 3, 1 }), 3), 2, 3, 0, CPU);
        Assert.Equal([2L, 1L, 3L, 3L], mask.shape);
        float[] expected =
        [
            0, M, M,   0, 0, M,   0, 0, 0,   // row 0: length 3, causal
            0, M, M,   0, M, M,   0, M, M,   // row 1: length 1, its padding queries see its one token
        ];
        Assert.Equal(expected, Values(mask));
    }

    [Fact]
    public void AChunkSeesTheChunksBeforeItAndItselfCausally()
    {
        using var scope = NewDisposeScope();
        var mask = AttentionMask.Build(null, 1, 2, 3, CPU); // positions 3 and 4 after a first chunk of 3
        Assert.Equal([1L, 1L, 2L, 5L], mask.shape);
        Assert.Equal([0, 0, 0, 0, M, 0, 0, 0, 0, 0], Values(mask));
    }

    [Fact]
    public void ADecodeStepSeesEachRowsOwnPositionsAndTheTokenFedNow()
    {
        using var scope = NewDisposeScope();
        var lengths = tensor(new long[] { 2, 0, 1 }); // cached positions per row; the span is max + 1 = 3
        var mask = AttentionMask.Build(AttentionMask.RightPadding(lengths + 1, 3), 3, 1, 2, CPU);
        Assert.Equal([3L, 1L, 1L, 3L], mask.shape);
        Assert.Equal([0, 0, 0, 0, M, M, 0, 0, M], Values(mask));
    }
}
