using System.Globalization;
using System.Text.Json.Nodes;
using FinQLoRA.Privacy.Accounting;
using FinQLoRA.Training;

namespace FinQLoRA.Privacy;

/// <summary><c>finqlora verify</c>'s privacy check: the ε a record claims, recomputed from its q, σ, steps and δ with its accountant.</summary>
public static class PrivacyRecordCheck
{
    public static LineageVerifier.Check Verify(JsonObject p, string recordPath)
    {
        const string what = "privacy epsilon";
        try
        {
            var kind = AccountantKinds.Spellings.TryParse(p["accountant"]!.GetValue<string>(), out var k) ? k
                : throw new FormatException($"unknown accountant {p["accountant"]}");
            double recorded = p["epsilon"]!.GetValue<double>();
            var spent = PrivacyAccountant.Epsilon(kind, p["sample_rate"]!.GetValue<double>(), p["noise_multiplier"]!.GetValue<double>(),
                p["steps"]!.GetValue<long>(), p["delta"]!.GetValue<double>());
            string detail = string.Create(CultureInfo.InvariantCulture, $"recorded ε {recorded:G6}, recomputed {spent.Epsilon:G6} at δ {p["delta"]}");
            // the same code recomputes it: anything beyond rounding means the record was edited or the accountant changed
            return Math.Abs(spent.Epsilon - recorded) <= 1e-6 * Math.Max(1, Math.Abs(recorded))
                ? new LineageVerifier.Check(what, recordPath, LineageVerifier.Outcome.Match, detail)
                : new LineageVerifier.Check(what, recordPath, LineageVerifier.Outcome.Mismatch, detail);
        }
        catch (Exception e) when (e is NullReferenceException or InvalidOperationException or FormatException)
        {
            return new LineageVerifier.Check(what, recordPath, LineageVerifier.Outcome.Mismatch, $"the privacy record is incomplete ({e.Message})");
        }
    }
}
