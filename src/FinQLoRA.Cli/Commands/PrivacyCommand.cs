using System.ComponentModel;
using System.Globalization;
using System.Text.Json.Nodes;
using FinQLoRA.Privacy.Accounting;
using Spectre.Console;
using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

/// <summary><c>finqlora privacy</c>: ε for DP-SGD's sample rate, noise multiplier and steps, or the noise multiplier for a
/// target ε; the same <see cref="PrivacyAccountant"/> that training logs and verify checks.</summary>
internal sealed class PrivacyCommand : Command<PrivacyCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--sample-rate <Q>")]
        [Description("The probability q that a step samples each example (or unit): the expected batch size over the data set size.")]
        public double? SampleRate { get; init; }

        [CommandOption("--noise-multiplier <SIGMA>")]
        [Description("σ: the noise's standard deviation over the clipping norm. Prints ε.")]
        public double? NoiseMultiplier { get; init; }

        [CommandOption("--target-epsilon <E>")]
        [Description("Instead of --noise-multiplier: print the smallest σ whose ε is at most E.")]
        public double? TargetEpsilon { get; init; }

        [CommandOption("--steps <T>")]
        [Description("Optimizer steps (each one Poisson-sampled batch).")]
        public long? Steps { get; init; }

        [CommandOption("--delta <D>")]
        [Description("δ of the (ε, δ) guarantee; 1/N (N the data set size) or smaller is usual.")]
        public double? Delta { get; init; }

        [CommandOption("--accountant <KIND>")]
        [Description("prv (Gopi et al. 2021, the tightest) or rdp (Rényi DP with Balle et al.'s conversion; also prints the optimal order).")]
        [DefaultValue("prv")]
        public string Accountant { get; init; } = "prv";

        [CommandOption("--json")]
        [Description("Print one JSON object {accountant, sample_rate, noise_multiplier, steps, delta, epsilon, optimal_order, target_epsilon}.")]
        public bool Json { get; init; }

        public override ValidationResult Validate()
        {
            if (SampleRate is not { } q) return ValidationResult.Error("--sample-rate is required (the expected batch size over the data set size, in (0, 1])");
            if (!(q > 0 && q <= 1)) return ValidationResult.Error($"--sample-rate {Text(q)}: use a probability in (0, 1] (the expected batch size over the data set size)");
            if (NoiseMultiplier is null && TargetEpsilon is null)
                return ValidationResult.Error("give --noise-multiplier SIGMA (prints ε) or --target-epsilon E (prints the σ that meets it)");
            if (NoiseMultiplier is not null && TargetEpsilon is not null)
                return ValidationResult.Error("give either --noise-multiplier (prints ε) or --target-epsilon (prints σ), not both");
            if (NoiseMultiplier is { } sigma && !(sigma > 0 && !double.IsInfinity(sigma)))
                return ValidationResult.Error($"--noise-multiplier {Text(sigma)}: use a number above 0 (1.0 is common)");
            if (TargetEpsilon is { } e && !(e > 0 && !double.IsInfinity(e)))
                return ValidationResult.Error($"--target-epsilon {Text(e)}: use a number above 0 (1 to 10 is usual)");
            if (Steps is not { } t) return ValidationResult.Error("--steps is required (the optimizer steps of the run, at least 1)");
            if (t < 1) return ValidationResult.Error($"--steps {t}: use a whole number of at least 1");
            if (Delta is not { } d) return ValidationResult.Error("--delta is required (in (0, 1); 1/N or smaller for N examples)");
            if (!(d > 0 && d < 1)) return ValidationResult.Error($"--delta {Text(d)}: use a number in (0, 1), such as 1/N for N examples");
            if (!AccountantKinds.Spellings.TryParse(Accountant, out _))
                return ValidationResult.Error($"--accountant '{Accountant}': use {AccountantKinds.Spellings.Expected}");
            return ValidationResult.Success();
        }

        public AccountantKind Kind => AccountantKinds.Spellings.Parse(Accountant, "accountant");
    }

    public override int Execute(CommandContext context, Settings s, CancellationToken cancellationToken)
    {
        double q = s.SampleRate!.Value, delta = s.Delta!.Value;
        long steps = s.Steps!.Value;
        double sigma = s.TargetEpsilon is { } target
            ? PrivacyAccountant.NoiseMultiplierFor(s.Kind, target, q, steps, delta)
            : s.NoiseMultiplier!.Value;
        PrivacySpent spent = PrivacyAccountant.Epsilon(s.Kind, q, sigma, steps, delta);
        string kind = AccountantKinds.Spellings.Name(s.Kind);

        if (s.Json)
        {
            var json = new JsonObject
            {
                ["accountant"] = kind, ["sample_rate"] = q, ["noise_multiplier"] = sigma, ["steps"] = steps, ["delta"] = delta,
                ["epsilon"] = spent.Epsilon, ["optimal_order"] = spent.OptimalOrder, ["target_epsilon"] = s.TargetEpsilon,
            };
            Console.WriteLine(json.ToJsonString());
            return 0;
        }
        string order = spent.OptimalOrder is { } a ? $", optimal Rényi order {Text(a)}" : "";
        string setting = $"{kind} accountant{order}: q = {Text(q)}, {steps} steps";
        AnsiConsole.WriteLine(s.TargetEpsilon is { } goal
            ? $"noise multiplier σ = {sigma.ToString("0.000", CultureInfo.InvariantCulture)} meets ε ≤ {Text(goal)} at δ = {Text(delta)}: ε = {Eps(spent)} ({setting})"
            : $"ε = {Eps(spent)} at δ = {Text(delta)} ({setting}, σ = {Text(sigma)})");
        return 0;
    }

    private static string Eps(PrivacySpent spent) => spent.Epsilon.ToString("0.000", CultureInfo.InvariantCulture);

    private static string Text(double v) => v.ToString("G6", CultureInfo.InvariantCulture);
}
