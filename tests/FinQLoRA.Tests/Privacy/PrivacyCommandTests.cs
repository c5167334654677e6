using System.Globalization;
using System.Text.Json;
using FinQLoRA.Privacy.Accounting;
using FinQLoRA.Tests.Cli;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Privacy;

/// <summary><c>finqlora privacy</c> prints what <see cref="PrivacyAccountant"/> computes, as text or JSON, and refuses
/// bad values before any work: exit 2, one stderr line naming the option.</summary>
public sealed class PrivacyCommandTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(2);
    private static readonly string TutorialRate = (256 / 60000.0).ToString("R", CultureInfo.InvariantCulture);

    [Fact]
    public void ItPrintsTheTutorialsEpsilonAndOptimalOrder()
    {
        var r = CliProcess.RunSeparately(Limit, "privacy", "--sample-rate", TutorialRate, "--noise-multiplier", "1.1",
            "--steps", "14063", "--delta", "1e-5", "--accountant", "rdp");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("ε = 2.597 at δ = 1E-05", r.Stdout);
        Assert.Contains("optimal Rényi order 8.1", r.Stdout);
    }

    [Fact]
    public void JsonCarriesTheLibrarysEpsilon()
    {
        var r = CliProcess.RunSeparately(Limit, "privacy", "--sample-rate", TutorialRate, "--noise-multiplier", "1.1",
            "--steps", "14063", "--delta", "1e-5", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var json = JsonDocument.Parse(r.Stdout);
        var root = json.RootElement;
        Assert.Equal("prv", root.GetProperty("accountant").GetString());
        Assert.Equal(14063, root.GetProperty("steps").GetInt64());
        Assert.Equal(JsonValueKind.Null, root.GetProperty("optimal_order").ValueKind);
        Assert.Equal(PrivacyAccountant.Epsilon(AccountantKind.Prv, 256 / 60000.0, 1.1, 14063, 1e-5).Epsilon, root.GetProperty("epsilon").GetDouble());
    }

    [Fact]
    public void ATargetEpsilonPrintsTheNoiseMultiplierThatMeetsIt()
    {
        var r = CliProcess.RunSeparately(Limit, "privacy", "--sample-rate", "0.01", "--target-epsilon", "3",
            "--steps", "1000", "--delta", "1e-5", "--accountant", "rdp", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var root = JsonDocument.Parse(r.Stdout).RootElement;
        double sigma = root.GetProperty("noise_multiplier").GetDouble();
        Assert.Equal(PrivacyAccountant.NoiseMultiplierFor(AccountantKind.Rdp, 3, 0.01, 1000, 1e-5), sigma);
        Assert.InRange(root.GetProperty("epsilon").GetDouble(), 2.97, 3.0);
        Assert.Equal(3, root.GetProperty("target_epsilon").GetDouble());
        Assert.Equal(JsonValueKind.Number, root.GetProperty("optimal_order").ValueKind);
    }

    [Fact]
    public void TheTextFormOfATargetNamesSigma()
    {
        var r = CliProcess.RunSeparately(Limit, "privacy", "--sample-rate", "0.01", "--target-epsilon", "3", "--steps", "1000", "--delta", "1e-5", "--accountant", "rdp");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Matches(@"noise multiplier σ = \d\.\d{3} meets ε ≤ 3 at δ = 1E-05: ε = 2\.9\d\d \(rdp accountant, optimal Rényi order", r.Stdout);
    }

    [Theory]
    [InlineData("--sample-rate is required", "--noise-multiplier", "1", "--steps", "10", "--delta", "1e-5")]
    [InlineData("--sample-rate 0: use a probability in (0, 1]", "--sample-rate", "0", "--noise-multiplier", "1", "--steps", "10", "--delta", "1e-5")]
    [InlineData("--sample-rate 1.5: use a probability in (0, 1]", "--sample-rate", "1.5", "--noise-multiplier", "1", "--steps", "10", "--delta", "1e-5")]
    [InlineData("--noise-multiplier 0: use a number above 0", "--sample-rate", "0.1", "--noise-multiplier", "0", "--steps", "10", "--delta", "1e-5")]
    [InlineData("--noise-multiplier -1: use a number above 0", "--sample-rate", "0.1", "--noise-multiplier=-1", "--steps", "10", "--delta", "1e-5")]
    [InlineData("give --noise-multiplier SIGMA (prints ε) or --target-epsilon E", "--sample-rate", "0.1", "--steps", "10", "--delta", "1e-5")]
    [InlineData("give either --noise-multiplier (prints ε) or --target-epsilon (prints σ), not both", "--sample-rate", "0.1", "--noise-multiplier", "1", "--target-epsilon", "2", "--steps", "10", "--delta", "1e-5")]
    [InlineData("--target-epsilon 0: use a number above 0", "--sample-rate", "0.1", "--target-epsilon", "0", "--steps", "10", "--delta", "1e-5")]
    [InlineData("--steps is required", "--sample-rate", "0.1", "--noise-multiplier", "1", "--delta", "1e-5")]
    [InlineData("--steps 0: use a whole number of at least 1", "--sample-rate", "0.1", "--noise-multiplier", "1", "--steps", "0", "--delta", "1e-5")]
    [InlineData("--delta is required", "--sample-rate", "0.1", "--noise-multiplier", "1", "--steps", "10")]
    [InlineData("--delta 0: use a number in (0, 1)", "--sample-rate", "0.1", "--noise-multiplier", "1", "--steps", "10", "--delta", "0")]
    [InlineData("--delta 1: use a number in (0, 1)", "--sample-rate", "0.1", "--noise-multiplier", "1", "--steps", "10", "--delta", "1")]
    [InlineData("--accountant 'moments': use prv or rdp", "--sample-rate", "0.1", "--noise-multiplier", "1", "--steps", "10", "--delta", "1e-5", "--accountant", "moments")]
    public void ABadValueIsOneLineNamingTheOption(string expected, params string[] args)
    {
        string line = CliProcess.AssertOneLineError(InProcessCli.Run(["privacy", .. args]));
        Assert.Contains(expected, line);
    }
}
