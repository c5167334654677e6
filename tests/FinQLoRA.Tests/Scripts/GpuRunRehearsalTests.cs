using System.Diagnostics;
using FinQLoRA.Tests.Support;
using Xunit;

namespace FinQLoRA.Tests.Scripts;

/// <summary>
/// scripts/gpu/run-gpu.sh in its rehearsal (RUN_DEVICE=cpu) with the programs this build made: every step of the GPU
/// plan runs end to end, and each ends PASS, or SKIP for a reason the rehearsal allows (said in the script's own words,
/// starting "rehearsal:"), and only in the steps that may skip here. About two minutes on an idle 2-core machine.
/// </summary>
public sealed class GpuRunRehearsalTests
{
    // Every step of the plan (issue 27); the script's step names start so.
    private static readonly string[] Plan =
    [
        "machine", "unpack bundle", "shim: NuGet shim's symbols", "shim: NuGet shim loads", "shim: search",
        "logits cpu = cpu: stories260K HF", "logits cpu = cpu: stories260K GGUF",
        "generate ids cpu = cpu: stories260K HF", "generate ids cpu = cpu: stories260K GGUF",
        "quantize on cpu", "dequantized cpu = cpu, bit-identical: NF4+DQ", "dequantized cpu = cpu, bit-identical: FP4",
        "dequantized cpu = cpu, bit-identical: int8", "generate ids cpu = cpu: 4-bit NF4+DQ", "generate ids cpu = cpu: 4-bit FP4",
        "generate ids cpu = cpu: 8-bit LLM.int8", "gradients cpu = cpu: LoRA", "gradients cpu = cpu: DoRA",
        "train 20 steps cpu = cpu: LoRA", "train 20 steps cpu = cpu: DoRA", "NCCL, one rank", "serve on cpu",
        "PEFT loads our adapter", "ours reproduces a PEFT-made LoRA adapter", "ours reproduces a PEFT-made DoRA adapter",
        "ours: QLoRA step", "peer: PyTorch + PEFT", "goals: 4-bit step", "planner: finqlora memory",
        "ours: inference memory", "goal: planner within 10%", "ours: decode tokens/s",
    ];

    // The steps a rehearsal may skip: no bundle, no CUDA for NCCL, no torch/peft in this machine's python (and so no
    // peer figures), and the planner's GPU plan set against a CPU's RSS.
    private static readonly string[] MaySkip =
    [
        "unpack bundle", "NCCL, one rank", "PEFT loads our adapter", "ours reproduces a PEFT-made LoRA adapter",
        "ours reproduces a PEFT-made DoRA adapter", "peer: PyTorch + PEFT", "goals: 4-bit step", "goal: planner within 10%",
    ];

    [GpuRehearsalFact]
    public void RehearsalRunsEveryStepOfThePlan()
    {
        using var results = new TempFolder();
        string cli = GpuRehearsalFactAttribute.Program("src/FinQLoRA.Cli", "finqlora");
        var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(Shared.RepoRoot, "scripts", "gpu", "run-gpu.sh"));
        psi.Environment["RUN_DEVICE"] = "cpu";
        psi.Environment["OUT"] = results.Path;
        psi.Environment["FINQLORA_CLI"] = cli;
        psi.Environment["FINQLORA_BENCH"] = GpuRehearsalFactAttribute.Program("bench/FinQLoRA.Bench", "FinQLoRA.Bench");
        psi.Environment["FINQLORA_MODELS"] = Path.Combine(Shared.Root, "models");
        // the build's own libtorch stands in for the machine's, and the copy of TorchSharp's NuGet shim beside it for the NuGet one
        psi.Environment["TORCH_LIB"] = Path.GetDirectoryName(cli)!;
        psi.Environment["FINQLORA_NUGET_SHIM_DIR"] = Path.GetDirectoryName(cli)!;
        psi.Environment["RUN_BUDGET_S"] = "1200";
        psi.Environment["TMPDIR"] = results.Path;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(TimeSpan.FromMinutes(10)), "the rehearsal ran past 10 minutes");
        string log = File.ReadAllText(Path.Combine(results.Path, "run.log"));
        var steps = File.ReadAllLines(Path.Combine(results.Path, "steps.tsv")).Skip(1).Select(l => l.Split('\t')).ToList();
        string table = string.Join("\n", steps.Select(s => string.Join(" | ", s)));

        foreach (string planned in Plan)
            Assert.True(steps.Count(s => s[0].StartsWith(planned, StringComparison.Ordinal)) == 1, $"step '{planned}' is not in the run once:\n{table}");
        foreach (var s in steps)
        {
            bool allowedSkip = s[1] == "SKIP" && s[3].StartsWith("rehearsal:", StringComparison.Ordinal) && MaySkip.Any(m => s[0].StartsWith(m, StringComparison.Ordinal));
            Assert.True(s[1] == "PASS" || allowedSkip, $"step '{s[0]}' ended {s[1]} ({s[3]}):\n{table}\n\n{Tail(log)}");
            Assert.Contains($"### {s[1]}: {s[0]} (", log); // every outcome is in the log too
        }
        Assert.True(p.ExitCode == 0, $"exit {p.ExitCode}\n{table}\n{Tail(stdout.Result)}\n{stderr.Result}");
        Assert.Contains("serve /v1/chat/completions, greedy:", File.ReadAllText(Path.Combine(results.Path, "verdicts.txt")));
        Assert.True(File.Exists(Path.Combine(results.Path, "ours-train.json")) && File.Exists(Path.Combine(results.Path, "ours-memory.json")));
    }

    private static string Tail(string text) => text.Length > 6000 ? text[^6000..] : text;
}

/// <summary>The rehearsal needs bash and python3, ../shared's stories260K, and the CLI and bench apphosts of this
/// build (a solution build makes both); skipped, saying which is missing, except under CI=true.</summary>
public sealed class GpuRehearsalFactAttribute : FactAttribute
{
    public GpuRehearsalFactAttribute()
    {
        if (Shared.IsCi) return;
        string? missing = !OnPath("bash") ? "bash" : !OnPath("python3") ? "python3"
            : !Shared.Available ? Shared.SkipReason
            : !File.Exists(Program("src/FinQLoRA.Cli", "finqlora")) ? $"the CLI apphost {Program("src/FinQLoRA.Cli", "finqlora")} (dotnet build the solution)"
            : !File.Exists(Program("bench/FinQLoRA.Bench", "FinQLoRA.Bench")) ? $"the bench apphost {Program("bench/FinQLoRA.Bench", "FinQLoRA.Bench")} (dotnet build the solution)"
            : null;
        if (missing is not null) Skip = $"scripts/gpu/run-gpu.sh rehearsal needs {missing}";
    }

    /// <summary>A project's apphost in the same configuration and runtime folder as this test assembly
    /// (tests/FinQLoRA.Tests/bin/Release/net10.0/linux-x64/ → PROJECT/bin/Release/net10.0/linux-x64/NAME).</summary>
    public static string Program(string project, string name)
    {
        string testBin = Path.Combine(Shared.RepoRoot, "tests", "FinQLoRA.Tests", "bin");
        string relative = Path.GetRelativePath(testBin, AppContext.BaseDirectory);
        return Path.Combine(Shared.RepoRoot, project, "bin", relative, name);
    }

    private static bool OnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Any(d => d.Length > 0 && File.Exists(Path.Combine(d, program)));
}
