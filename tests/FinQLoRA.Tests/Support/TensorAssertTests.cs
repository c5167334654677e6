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
}
