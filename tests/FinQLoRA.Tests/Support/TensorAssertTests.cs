using Xunit.Sdk;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Support;

/// <summary>What <see cref="TensorAssert"/> prints when it fails: the number, the place and both values.</summary>
public sealed class TensorAssertTests
{
    [Fact]
    public void AFailureNamesTheLargestDifferenceItsIndexAndBothValues()
    {
        using var scope = NewDisposeScope();
        var expected = zeros(2, 3);
        var actual = expected.clone();
        actual[1, 2] = tensor(0.5f);
        actual[0, 1] = tensor(0.25f);
        var e = Assert.Throws<XunitException>(() => TensorAssert.Close(expected, actual, rtol: 1e-5, atol: 1e-3));
        Assert.Contains("max |diff| 0.5 at [1, 2]: expected 0, actual 0.5", e.Message);
        TensorAssert.Close(expected, actual, atol: 0.5);
        TensorAssert.NotClose(expected, actual, atol: 1e-3);
    }

    [Fact]
    public void AShapeMismatchIsNamedBeforeAnyValue()
    {
        using var scope = NewDisposeScope();
        var e = Assert.Throws<XunitException>(() => TensorAssert.Close(zeros(2, 3), zeros(3, 2)));
        Assert.Contains("shapes differ, expected [2, 3], actual [3, 2]", e.Message);
    }

    [Fact]
    public void MaxDiffAtMostIncludesItsBoundAndMaxDiffBelowDoesNot()
    {
        using var scope = NewDisposeScope();
        var expected = zeros(4);
        var actual = tensor(new[] { 0f, 0.5f, -0.25f, 0f });
        TensorAssert.MaxDiffAtMost(expected, actual, 0.5);
        var e = Assert.Throws<XunitException>(() => TensorAssert.MaxDiffBelow(expected, actual, 0.5, "logits"));
        Assert.Contains("logits: max |diff| 0.5 not below 0.5", e.Message);
        Assert.Contains("at [1]", e.Message);
        Assert.Throws<XunitException>(() => TensorAssert.MaxDiffAtMost(expected, actual, 0.49));
        Assert.Equal(0.5, TensorAssert.MaxDiff(expected, actual));
        Assert.Equal(1.0, TensorAssert.RelativeMaxDiff(expected, actual)); // max |a − b| / max |b| = 0.5 / 0.5
    }

    [Fact]
    public void EqualTakesMinusZeroForZeroAndBitIdenticalDoesNot()
    {
        using var scope = NewDisposeScope();
        var zero = zeros(3);
        var minusZero = -zeros(3);
        TensorAssert.Equal(zero, minusZero);
        TensorAssert.NotBitIdentical(zero, minusZero);
        Assert.Throws<XunitException>(() => TensorAssert.BitIdentical(zero, minusZero, "w"));
        TensorAssert.BitIdentical(zero, zeros(3));
        Assert.Throws<XunitException>(() => TensorAssert.BitIdentical(zero, zeros(3, dtype: ScalarType.Float64))); // dtype counts
        Assert.Throws<XunitException>(() => TensorAssert.Equal(zero, tensor(new[] { 0f, 1f, 0f })));
    }

    [Fact]
    public void MaxDiffOverNamedArraysNeedsTheSameNames()
    {
        var a = new Dictionary<string, float[]> { ["x"] = [1, 2], ["y"] = [0] };
        Assert.Equal(0.5, TensorAssert.MaxDiff(a, new Dictionary<string, float[]> { ["x"] = [1, 2.5f], ["y"] = [0] }));
        Assert.ThrowsAny<XunitException>(() => TensorAssert.MaxDiff(a, new Dictionary<string, float[]> { ["x"] = [1, 2] }));
    }
}
