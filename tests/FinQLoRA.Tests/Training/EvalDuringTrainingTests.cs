using System.Text.Json.Nodes;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Training;

/// <summary>Evaluation while training: metrics at the right steps, the best adapter is the best logged one,
/// early stopping stops, and the TensorBoard event file holds the logged scalars.</summary>
public sealed class EvalDuringTrainingTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(5);

    private static string[] Args(string data, string outDir, params string[] extra) =>
    [
        "train", "--model", SeededLlama.Folder, "--data", data, "--out", outDir, "--bits", "16", "--dtype", "f32",
        "--rank", "4", "--batch-size", "4", "--max-steps", "8", "--warmup-steps", "1", "--save-every", "0", "--lr", "3e-3",
        "--eval-split", "0.25", "--eval-every", "2", .. extra,
    ];

    [Fact]
    public void EvaluationsLandAtTheirStepsAndTheBestAdapterIsTheBestLoggedOne()
    {
        using var dir = new TempFolder();
        string data = TrainingRun.WriteData(dir.Path);
        string run = Path.Combine(dir.Path, "run");
        var r = CliProcess.RunSeparately(Limit, Args(data, run, "--eval-samples", "4", "--save-best", "--report-to", "tensorboard"));
        Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
        Assert.Contains("evaluation: 8 held-out examples", r.Stderr);

        var evals = TrainingRun.Metrics(run).Where(o => o["eval_loss"] != null).ToList();
        Assert.Equal([2, 4, 6, 8], evals.Select(o => o["step"]!.GetValue<int>()));
        Assert.All(evals, o => Assert.Equal(4, o["eval_generated"]!.GetValue<int>()));
        Assert.All(evals, o => Assert.InRange(o["eval_accuracy"]!.GetValue<double>(), 0, 1));
        var bestLogged = evals.MinBy(o => o["eval_loss"]!.GetValue<double>())!;
        var bestSaved = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "best", "best_eval.json")))!;
        Assert.Equal(bestLogged["step"]!.GetValue<int>(), bestSaved["step"]!.GetValue<int>());
        Assert.True(File.Exists(Path.Combine(run, "best", "adapter_model.safetensors")));
        var record = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "run.json")))!;
        Assert.Equal(bestLogged["step"]!.GetValue<int>(), record["best"]!["step"]!.GetValue<int>());
        Assert.Equal(evals[^1]["eval_loss"]!.GetValue<double>(), record["final_eval"]!["eval_loss"]!.GetValue<double>());

        // TensorBoard: read the event file back (TFRecord framing around TensorBoard's Event protobuf)
        var scalars = TensorBoardEvents.Read(Directory.GetFiles(Path.Combine(run, "runs"), "events.out.tfevents.*", SearchOption.AllDirectories).Single());
        Assert.Equal(Enumerable.Range(1, 8), scalars.Where(s => s.Tag == "train/loss").Select(s => (int)s.Step));
        var trainLoss = TrainingRun.Metrics(run).Where(o => o["loss"] != null).Select(o => (float)o["loss"]!.GetValue<double>());
        Assert.Equal(trainLoss, scalars.Where(s => s.Tag == "train/loss").Select(s => s.Value));
        Assert.Equal(evals.Select(o => (float)o["eval_loss"]!.GetValue<double>()), scalars.Where(s => s.Tag == "eval/loss").Select(s => s.Value));
        Assert.Contains(scalars, s => s.Tag == "train/learning_rate");
        Assert.Contains(scalars, s => s.Tag == "eval/accuracy");
    }

    [Fact]
    public void EarlyStoppingStopsAfterPatienceEvaluationsWithoutImprovement()
    {
        using var dir = new TempFolder();
        string data = TrainingRun.WriteData(dir.Path);
        string run = Path.Combine(dir.Path, "run");
        // a learning rate too small to move the loss: the second evaluation cannot beat the first
        var r = CliProcess.RunSeparately(Limit, [.. Args(data, run, "--early-stopping-patience", "1", "--max-steps", "20"), "--lr", "1e-30"]);
        Assert.True(r.ExitCode == 0, r.Stderr + r.Stdout);
        Assert.Contains("early stopping at step 4", r.Stderr);
        var record = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "run.json")))!;
        Assert.Equal(4, record["steps"]!.GetValue<int>());
        Assert.Equal(2, record["best"]!["step"]!.GetValue<int>());
    }
}

/// <summary>A resumed run keeps its best-so-far and its patience count (they travel in every checkpoint).</summary>
public sealed class BestAcrossResumeTests
{
    [Fact]
    public void AResumedRunKeepsTheBestSoFar()
    {
        using var dir = new TempFolder();
        string data = TrainingRun.WriteData(dir.Path);
        string[] Args(string outDir) =>
        [
            "train", "--model", SeededLlama.Folder, "--data", data, "--out", outDir, "--bits", "16", "--dtype", "f32",
            "--batch-size", "4", "--max-steps", "8", "--warmup-steps", "1", "--lr", "3e-3", "--eval-split", "0.25", "--eval-every", "2",
            "--save-every", "4", "--save-best", "--keep-checkpoints", "3",
        ];
        string straight = Path.Combine(dir.Path, "straight"), resumed = Path.Combine(dir.Path, "resumed");
        Assert.Equal(0, CliProcess.RunSeparately(TimeSpan.FromMinutes(3), Args(straight)).ExitCode);
        Assert.Equal(0, CliProcess.RunSeparately(TimeSpan.FromMinutes(3), Args(resumed)).ExitCode);
        // as if killed after checkpoint-4: drop everything written after it, then resume
        foreach (string d in new[] { "adapter", "best", "checkpoint-8" }.Select(n => Path.Combine(resumed, n)).Where(Directory.Exists)) Directory.Delete(d, true);
        File.Delete(Path.Combine(resumed, "run.json"));
        var state = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(resumed, "checkpoint-4", "trainer_state.json")))!;
        Assert.Equal("eval_loss", state["best"]!["metric"]!.GetValue<string>());
        var r = CliProcess.RunSeparately(TimeSpan.FromMinutes(3), [.. Args(resumed), "--resume"]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        string Best(string run) => System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(run, "run.json")))!["best"]!.ToJsonString();
        Assert.Equal(Best(straight), Best(resumed));
    }

    [Fact]
    public void AYamlListOfSourcesIsATaskFamily()
    {
        using var dir = new TempFolder();
        string yaml = Path.Combine(dir.Path, "family.yaml");
        File.WriteAllText(yaml, "model: m\ndata:\n  - fpb=fpb.jsonl:2\n  - tfns=tfns.jsonl\n");
        var c = FinQLoRA.Training.TrainConfig.FromValues(FinQLoRA.Training.TrainConfig.ReadYaml(yaml), yaml);
        Assert.Equal([new FinQLoRA.Training.DataSource("fpb", "fpb.jsonl", 2), new FinQLoRA.Training.DataSource("tfns", "tfns.jsonl", 1)], c.DataSources);
    }
}
