using FinQLoRA.Training.Optimizers;

namespace FinQLoRA.Tests.Training;

public sealed class OptimizerKindsTests
{
    [Theory]
    [InlineData("adamw", OptimizerKind.AdamW)]
    [InlineData("AdamW", OptimizerKind.AdamW)]
    [InlineData("zero-one-adam", OptimizerKind.ZeroOneAdam)]
    [InlineData("SGD", OptimizerKind.Sgd)]
    public void TheOptimizersParse(string text, OptimizerKind expected)
    {
        Assert.Equal(expected, OptimizerKinds.Spellings.Parse(text, "optimizer"));
        Assert.Equal(text.ToLowerInvariant(), OptimizerKinds.Spellings.Name(expected));
    }

    [Fact]
    public void AnythingElseIsRefused() =>
        Assert.Equal("optimizer 'lion' is not one of adamw, sgd, zero-one-adam",
            Assert.Throws<UserInputException>(() => OptimizerKinds.Spellings.Parse("lion", "optimizer")).Message);
}
