using System.Globalization;
using System.Text.Json.Nodes;
using FinQLoRA.Privacy.Accounting;
using FinQLoRA.Tests.Support;
using FinQLoRA.Tests.Training;

namespace FinQLoRA.Tests.Privacy;

/// <summary>
/// <c>finqlora train --dp</c> end to end on the seeded tiny Llama: the ε it records everywhere is what
/// <c>finqlora privacy</c> prints for the run's q, σ and steps, verify recomputes it, the cap stops the run, a
/// killed run resumes to the same bytes, and a changed DP setting is refused on resume.
/// </summary>
public sealed class DpTrainingRunTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(5);

    private static string[] Args(string data, string outDir, params string[] extra) =>
    [
        "train", "--model", SeededLlama.Folder, "--data", data, "--out", outDir, "--bits", "4", "--rank", "4", "--dropout", "0",
        "--batch-size", "4", "--max-steps", "6", "--lr", "2e-3", "--warmup-steps", "0", "--dtype", "f32", "--save-every", "3",
        "--dp", .. extra,
    ];

    private static JsonObject Privacy(string runDir) => JsonNode.Parse(File.ReadAllText(Path.Combine(runDir, "run.json")))!["privacy"]!.AsObject();

    private static double D(JsonNode? n) => n!.GetValue<double>();

    [Fact]
    public void The_recorded_epsilon_is_what_finqlora_privacy_prints_and_verify_recomputes_it()
    {
        using var dir = new TempFolder();
        string data = TrainingRun.WriteData(dir.Path), run = Path.Combine(dir.Path, "run");
        var (code, output) = CliProcess.Run(Limit, Args(data, run, "--dp-noise-multiplier", "1.0"));
        Assert.True(code == 0, output);
        Assert.Contains("ε ", output);

        var p = Privacy(run);
        Assert.Equal(32, p["units"]!.GetValue<int>());
        Assert.Equal(4.0 / 32, D(p["sample_rate"]), 12);
        Assert.Equal(1.0 / 32, D(p["delta"]), 12);
        Assert.Equal(6, p["steps"]!.GetValue<int>());
        var cli = CliProcess.RunSeparately(Limit, "privacy", "--sample-rate", Inv(D(p["sample_rate"])), "--noise-multiplier", "1.0",
            "--steps", "6", "--delta", Inv(D(p["delta"])), "--json");
        Assert.True(cli.ExitCode == 0, cli.Output);
        Assert.Equal(D(p["epsilon"]), D(JsonNode.Parse(cli.Stdout.Trim().Split('\n')[^1])!["epsilon"]), 9);

        // every metrics line carries ε so far, rising with the steps; the adapter carries the record and says it
        var epsilons = TrainingRun.Metrics(run).Select(m => D(m["epsilon"])).ToList();
        Assert.Equal(6, epsilons.Count);
        Assert.True(epsilons.Zip(epsilons.Skip(1)).All(x => x.Second > x.First), string.Join(", ", epsilons));
        Assert.Equal(D(p["epsilon"]), epsilons[^1], 12);
        Assert.All(TrainingRun.Metrics(run), m => Assert.InRange(D(m["dp_clipped_fraction"]), 0, 1));
        var lineage = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "adapter", "lineage.json")))!;
        Assert.Equal(D(p["epsilon"]), D(lineage["privacy"]!["epsilon"]), 12);
        Assert.Contains("## Privacy", File.ReadAllText(Path.Combine(run, "adapter", "README.md")));

        var verified = CliProcess.RunSeparately(Limit, "verify", Path.Combine(run, "adapter"));
        Assert.True(verified.ExitCode == 0, verified.Output);
        Assert.Contains("privacy epsilon", verified.Stdout);
        // a record claiming less privacy spent than its settings give is caught
        string lineageFile = Path.Combine(run, "adapter", "lineage.json");
        var edited = JsonNode.Parse(File.ReadAllText(lineageFile))!;
        edited["privacy"]!["epsilon"] = D(p["epsilon"]) / 2;
        File.WriteAllText(lineageFile, edited.ToJsonString());
        var caught = CliProcess.RunSeparately(Limit, "verify", Path.Combine(run, "adapter"));
        Assert.Equal(1, caught.ExitCode);
        Assert.Contains("privacy epsilon", caught.Output);
    }

    [Fact]
    public void A_target_epsilon_is_met_and_the_cap_stops_the_run_before_it_is_exceeded()
    {
        using var dir = new TempFolder();
        string data = TrainingRun.WriteData(dir.Path);
        string target = Path.Combine(dir.Path, "target");
        var (code, output) = CliProcess.Run(Limit, Args(data, target, "--dp-target-epsilon", "8", "--dp-accountant", "rdp"));
        Assert.True(code == 0, output);
        var p = Privacy(target);
        Assert.InRange(D(p["epsilon"]), 7.5, 8.0); // solved σ spends at most the target, and not much less
        Assert.Equal("rdp", p["accountant"]!.GetValue<string>());

        // σ = 0.6 spends ε fast; a cap between ε(2) and ε(3) stops after step 2
        double q = 4.0 / 32, delta = 1.0 / 32;
        double e2 = PrivacyAccountant.Epsilon(AccountantKind.Prv, q, 0.6, 2, delta).Epsilon, e3 = PrivacyAccountant.Epsilon(AccountantKind.Prv, q, 0.6, 3, delta).Epsilon;
        string capped = Path.Combine(dir.Path, "capped");
        (code, output) = CliProcess.Run(Limit, Args(data, capped, "--dp-noise-multiplier", "0.6", "--dp-max-epsilon", Inv((e2 + e3) / 2)));
        Assert.True(code == 0, output);
        Assert.Contains("stopping after step 2", output);
        Assert.Equal(2, Privacy(capped)["steps"]!.GetValue<int>());
        Assert.True(D(Privacy(capped)["epsilon"]) <= (e2 + e3) / 2);
    }

    [Fact]
    public void A_killed_dp_run_resumes_to_the_same_adapter_and_refuses_a_changed_setting()
    {
        using var dir = new TempFolder();
        string data = TrainingRun.WriteData(dir.Path);
        string straight = Path.Combine(dir.Path, "straight"), killed = Path.Combine(dir.Path, "killed");
        string[] extra = ["--dp-noise-multiplier", "1.0"];
        var (code, output) = CliProcess.Run(Limit, Args(data, straight, extra));
        Assert.True(code == 0, output);
        TrainingRun.KillAfterCheckpointThenResume(Args(data, killed, extra), killed, "checkpoint-3", Limit);
        Assert.Equal(File.ReadAllBytes(Path.Combine(straight, "adapter", "adapter_model.safetensors")),
            File.ReadAllBytes(Path.Combine(killed, "adapter", "adapter_model.safetensors")));
        Assert.Equal(D(Privacy(straight)["epsilon"]), D(Privacy(killed)["epsilon"]));

        var refused = CliProcess.RunSeparately(Limit, [.. Args(data, killed, "--dp-noise-multiplier", "1.0", "--dp-max-grad-norm", "0.5"), "--resume"]);
        Assert.Equal(2, refused.ExitCode);
        Assert.Contains("max_grad_norm", refused.Stderr);
        Assert.Single(refused.Stderr.Trim().Split('\n'));
    }

    [Fact]
    public void User_level_units_count_customers_not_records()
    {
        using var dir = new TempFolder();
        string data = Path.Combine(dir.Path, "by-customer.jsonl");
        // 24 records of 6 customers
        File.WriteAllLines(data, Enumerable.Range(0, 24).Select(i => new JsonObject
        {
            ["context"] = $"Sentiment of: item {i} rose.\nAnswer: ", ["target"] = i % 2 == 0 ? "positive" : "negative", ["customer_id"] = $"c{i % 6}",
        }.ToJsonString()));
        string run = Path.Combine(dir.Path, "run");
        var (code, output) = CliProcess.Run(Limit, Args(data, run, "--dp-noise-multiplier", "1.0", "--dp-unit", "field:customer_id", "--batch-size", "2"));
        Assert.True(code == 0, output);
        var p = Privacy(run);
        Assert.Equal(6, p["units"]!.GetValue<int>());
        Assert.Equal("field:customer_id", p["unit"]!.GetValue<string>());
        Assert.Equal(2.0 / 6, D(p["sample_rate"]), 12);
    }

    private static string Inv(double v) => v.ToString("R", CultureInfo.InvariantCulture);
}
