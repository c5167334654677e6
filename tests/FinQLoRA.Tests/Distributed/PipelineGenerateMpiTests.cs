using FinQLoRA.Distributed;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Distributed;

/// <summary><c>finqlora generate --pipeline-stages 2</c> under mpirun, where the serving engine runs over the stages:
/// its JSON lines are the ones one process prints (which generates with its own left-padded batch loop), greedy with
/// several prompts and micro-batches, and sampled with one prompt and a seed; a request rank 0 refuses ends every rank.</summary>
[Collection(MpiCollection.Name)]
public sealed class PipelineGenerateMpiTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(3);

    private static CliResult UnderMpirun(IReadOnlyList<string> args) =>
        CliProcess.RunProgram(MpiLauncher.FindMpirun(),
            MpiLauncher.BuildArguments(2, CliProcess.Dotnet, [], CliProcess.Arguments(args), MpiLauncher.RunningAsRoot()), Limit,
            new CliRunOptions { CloseStdin = true });

    private static void AssertStagesPrintWhatOneProcessPrints(string[] args, params string[][] pipelineFlags)
    {
        var single = CliProcess.RunSeparately(Limit, args);
        Assert.True(single.ExitCode == 0, single.Output);
        Assert.NotEmpty(single.Stdout.Trim());
        foreach (var flags in pipelineFlags)
        {
            var staged = UnderMpirun([.. args, "--pipeline-stages", "2", .. flags]);
            Assert.True(staged.ExitCode == 0, staged.Output);
            Assert.Equal(single.Stdout, staged.Stdout);
        }
    }

    [MpiFact]
    public void GreedyPromptsOfDifferentLengthsInBatchesOfTwo()
    {
        using var dir = new TempFolder();
        // five prompts, two slots: rows end at different steps (EOS or the budget) and newcomers take their slots
        string prompts = dir.Write("prompts.jsonl", string.Join("\n", new[] { "Once upon a time", "Lily", "The little dog ran to the park and saw a big", "One day, a boy named Tom", "Sam" }
            .Select(p => $"{{\"prompt\": \"{p}\"}}")) + "\n");
        AssertStagesPrintWhatOneProcessPrints(
            ["generate", "--model", SeededLlama.Folder, "--prompts", prompts, "--max-new-tokens", "24", "--batch-size", "2", "--dtype", "f32", "--json"],
            ["--micro-batches", "1"], ["--micro-batches", "2"]);
    }

    [MpiFact]
    public void ASampledPromptDrawsAsOneProcessDoes()
    {
        // one prompt: its sampler is seeded with the seed in both loops and draws from the same logits
        AssertStagesPrintWhatOneProcessPrints(
            ["generate", "--model", SeededLlama.Folder, "--prompt", "Once upon a time", "--max-new-tokens", "16", "--temperature", "0.9",
                "--top-k", "40", "--seed", "7", "--dtype", "f32", "--json"],
            ["--micro-batches", "1"]);
    }

    [MpiFact]
    public void ARequestRankZeroRefusesEndsEveryRank()
    {
        var r = UnderMpirun(["generate", "--model", SeededLlama.Folder, "--prompt", "Once upon a time", "--max-new-tokens", "100000",
            "--dtype", "f32", "--pipeline-stages", "2"]);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("--max-new-tokens", r.Output);                    // rank 0 names the option
        Assert.Contains("rank 0 rejected the generation request", r.Output); // rank 1 leaves instead of waiting
    }
}
