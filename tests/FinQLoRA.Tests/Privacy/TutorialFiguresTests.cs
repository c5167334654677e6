using FinQLoRA.Privacy.Accounting;

namespace FinQLoRA.Tests.Privacy;

/// <summary>
/// The figures TensorFlow Privacy publishes for its MNIST DP-SGD tutorial (N = 60,000, batch 256, δ = 1e-5), computed
/// with its RDP accountant and the classical conversion: tensorflow/privacy, tutorials/README.md, "Expected Output"
/// (ε after 1, 2 and 60 epochs at σ = 1.1: 1.03, 1.11, 3.01; `compute_dp_sgd_privacy.py --N=60000 --batch_size=256
/// --noise_multiplier=1.1 --epochs=60 --delta=1e-5` "satisfies differential privacy with eps = 3.01 and delta = 1e-05")
/// and its "Select Parameters" table (σ = 1.3 for 15 epochs: 1.19; σ = 0.7 for 45 epochs: 7.10). Steps are
/// ceil(epochs·N/batch), as compute_dp_sgd_privacy counts them.
/// </summary>
public sealed class TutorialFiguresTests
{
    private const double SampleRate = 256 / 60000.0;
    private const double Delta = 1e-5;

    private static long Steps(int epochs) => (long)Math.Ceiling(epochs * 60000 / 256.0);

    [Theory]
    [InlineData(1.1, 60, 3.01)]
    [InlineData(1.1, 1, 1.03)]
    [InlineData(1.1, 2, 1.11)]
    [InlineData(1.3, 15, 1.19)]
    [InlineData(0.7, 45, 7.10)]
    public void TheClassicalConversionReproducesThePrintedEpsilon(double sigma, int epochs, double printed)
    {
        Assert.Equal(14063, Steps(60));
        var spent = RdpAccountant.Epsilon(SampleRate, sigma, Steps(epochs), Delta, RdpConversion.Classical);
        Assert.Equal(printed, Math.Round(spent.Epsilon, 2));
    }

    [Theory]
    [InlineData(1.1, 60)]
    [InlineData(1.3, 15)]
    [InlineData(0.7, 45)]
    public void TheTightConversionAndThenPrvSpendLess(double sigma, int epochs)
    {
        long steps = Steps(epochs);
        var classical = RdpAccountant.Epsilon(SampleRate, sigma, steps, Delta, RdpConversion.Classical);
        var tight = PrivacyAccountant.Epsilon(AccountantKind.Rdp, SampleRate, sigma, steps, Delta);
        var prv = PrivacyAccountant.Epsilon(AccountantKind.Prv, SampleRate, sigma, steps, Delta);
        Assert.True(tight.Epsilon < classical.Epsilon, $"tight {tight.Epsilon}, classical {classical.Epsilon}");
        Assert.True(prv.Epsilon < tight.Epsilon, $"prv {prv.Epsilon}, rdp {tight.Epsilon}");
        Assert.NotNull(tight.OptimalOrder);
        Assert.Contains(tight.OptimalOrder!.Value, RdpAccountant.Orders);
        Assert.Null(prv.OptimalOrder);
    }

    [Fact]
    public void TheTutorialsFiguresUnderEachAccountant()
    {
        // what docs/privacy.md quotes for the 60-epoch tutorial: classical 3.008 (order 8.8), tight 2.597 (order 8.1), PRV 2.392
        long steps = Steps(60);
        var classical = RdpAccountant.Epsilon(SampleRate, 1.1, steps, Delta, RdpConversion.Classical);
        var tight = RdpAccountant.Epsilon(SampleRate, 1.1, steps, Delta);
        Assert.Equal((3.008, 8.8), (Math.Round(classical.Epsilon, 3), classical.OptimalOrder!.Value));
        Assert.Equal((2.597, 8.1), (Math.Round(tight.Epsilon, 3), tight.OptimalOrder!.Value));
        Assert.Equal(2.392, Math.Round(PrvAccountant.Epsilon(SampleRate, 1.1, steps, Delta).Epsilon, 3));
    }
}
