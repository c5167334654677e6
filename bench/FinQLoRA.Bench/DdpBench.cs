using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using FinQLoRA.Data.Tasks;
using FinQLoRA.Distributed;
using FinQLoRA.IO;
using FinQLoRA.Training;

namespace FinQLoRA.Bench;

/// <summary>
/// Data-parallel training through the real CLI (<c>mpirun -np 2 finqlora train</c>), read back from metrics.jsonl and
/// run.json:
/// <list type="number">
/// <item>scaling: 1 rank × 2 threads against 2 ranks × 1 thread (and 1 rank × 1 thread for reference) on the same global batch (tokens/s over the training
/// loop); <c>DOTNET_PROCESSOR_COUNT=2</c> pins the threads, since the launcher gives each rank cores / ranks;</item>
/// <item>communication: bytes rank 0 sends per step with AdamW (fp32 gradient all-reduce) and with 0/1 Adam after its
/// variance freeze (1-bit), on the same data and seed, and both loss curves in one loss.png.</item>
/// </list>
/// Options: --model DIR (default: stories260K from the shared folder), --data JSONL (default: TFNS train built from the
/// shared CSV), --cli finqlora.dll, --steps N (40), --freeze N (8), --batch B per rank (4), --out DIR (runs/bench-ddp).
/// </summary>
public static class DdpBench
{
    public static int Run(string[] args)
    {
        var o = Options(args);
        string outDir = Path.GetFullPath(o.GetValueOrDefault("out", "runs/bench-ddp"));
        if (Directory.Exists(outDir)) Directory.Delete(outDir, recursive: true);
        Directory.CreateDirectory(outDir);
        string cli = o.TryGetValue("cli", out var c) ? c : FindCli();
        string model = o.TryGetValue("model", out var m) ? m : SharedPath("models/stories260K-hf");
        string data = o.TryGetValue("data", out var d) ? d : BuildTfns(outDir);
        int steps = Int(o, "steps", 40), freeze = Int(o, "freeze", 8), batch = Int(o, "batch", 4);
        Console.WriteLine($"ddp bench: {model}, {data}, {steps} steps, global batch {2 * batch}, cli {cli}");

        List<string> Train(string run, int perRank, params string[] extra) =>
        [
            cli, "train", "--model", model, "--data", data, "--out", Path.Combine(outDir, run), "--max-steps", Str(steps),
            "--batch-size", Str(perRank), "--dtype", "f32", "--bits", "16", "--lr", "1e-3", "--warmup-steps", "2",
            "--max-seq-len", "128", "--seed", "7", "--save-every", "0", .. extra,
        ];
        var pinned = new Dictionary<string, string> { ["DOTNET_PROCESSOR_COUNT"] = "2" };

        // 1. Scaling on the same global batch; 1 rank x 1 thread separates the gain of ranks from that of threads.
        Launch(1, Train("one-rank-one-thread", 2 * batch), new Dictionary<string, string> { ["DOTNET_PROCESSOR_COUNT"] = "1" });
        Launch(1, Train("one-rank", 2 * batch), pinned);
        Launch(2, Train("two-ranks", batch), pinned);
        double oneThread = RunJson(outDir, "one-rank-one-thread")["tokens_per_second"]!.GetValue<double>();
        double oneRank = RunJson(outDir, "one-rank")["tokens_per_second"]!.GetValue<double>();
        double twoRanks = RunJson(outDir, "two-ranks")["tokens_per_second"]!.GetValue<double>();

        // 2. Communication: AdamW against 0/1 Adam, two ranks each (the two-rank AdamW run above is the baseline).
        Launch(2, Train("zero-one-adam", batch, "--optimizer", "zero-one-adam", "--var-freeze-step", Str(freeze)), pinned);
        var adamw = Metrics(outDir, "two-ranks");
        var zeroOne = Metrics(outDir, "zero-one-adam");
        // 0/1 Adam freezes the variance at the end of step freeze+1 (the last full-precision step).
        double adamwBytes = adamw.Where(p => p.Step > freeze + 1).Average(p => (double)p.Bytes);
        double zeroOneBytes = zeroOne.Where(p => p.Step > freeze + 1).Average(p => (double)p.Bytes);
        double warmupBytes = zeroOne.Where(p => p.Step > 1 && p.Step <= freeze + 1).Average(p => (double)p.Bytes);
        string plot = Path.Combine(outDir, "loss.png");
        LossPlot.Write(plot,
        [
            ("AdamW (fp32 all-reduce)", adamw.Select(p => (double)p.Step).ToArray(), adamw.Select(p => p.Loss).ToArray()),
            ($"0/1 Adam (freeze after step {freeze + 1})", zeroOne.Select(p => (double)p.Step).ToArray(), zeroOne.Select(p => p.Loss).ToArray()),
        ], "2 ranks: AdamW vs 0/1 Adam");

        Console.WriteLine();
        Console.WriteLine("| measurement | value |");
        Console.WriteLine("|---|---|");
        Console.WriteLine($"| tokens/s, 1 rank x 1 thread (batch {2 * batch}) | {oneThread:F0} |");
        Console.WriteLine($"| tokens/s, 1 rank x 2 threads (batch {2 * batch}) | {oneRank:F0} |");
        Console.WriteLine($"| tokens/s, 2 ranks x 1 thread (batch {batch} each) | {twoRanks:F0} |");
        Console.WriteLine($"| scaling 2 ranks / 1 rank | {twoRanks / oneRank:F2}x |");
        Console.WriteLine($"| bytes/step, AdamW (steps > {freeze + 1}) | {adamwBytes:F0} |");
        Console.WriteLine($"| bytes/step, 0/1 Adam warm-up (steps 2..{freeze + 1}) | {warmupBytes:F0} |");
        Console.WriteLine($"| bytes/step, 0/1 Adam after freeze (steps > {freeze + 1}) | {zeroOneBytes:F0} |");
        Console.WriteLine($"| AdamW / 0/1 Adam after freeze | {adamwBytes / zeroOneBytes:F1}x |");
        Console.WriteLine($"| final loss AdamW / 0/1 Adam | {adamw[^1].Loss:F4} / {zeroOne[^1].Loss:F4} |");
        Console.WriteLine($"loss curves: {plot}");

        var summary = new JsonObject
        {
            ["tokens_per_second_1x1"] = Math.Round(oneThread, 1), ["tokens_per_second_1x2"] = Math.Round(oneRank, 1), ["tokens_per_second_2x1"] = Math.Round(twoRanks, 1),
            ["scaling"] = Math.Round(twoRanks / oneRank, 3), ["adamw_bytes_per_step"] = Math.Round(adamwBytes, 1),
            ["zero_one_adam_warmup_bytes_per_step"] = Math.Round(warmupBytes, 1),
            ["zero_one_adam_bytes_per_step"] = Math.Round(zeroOneBytes, 1), ["ratio"] = Math.Round(adamwBytes / zeroOneBytes, 2),
            ["final_loss_adamw"] = adamw[^1].Loss, ["final_loss_zero_one_adam"] = zeroOne[^1].Loss,
        };
        AtomicFile.WriteAllText(Path.Combine(outDir, "ddp.json"), summary.ToJsonString());
        return 0;
    }

    private static void Launch(int ranks, List<string> arguments, IReadOnlyDictionary<string, string> environment)
    {
        string dotnet = Environment.ProcessPath is { } p && Path.GetFileNameWithoutExtension(p) == "dotnet" ? p : "dotnet";
        var start = ranks == 1
            ? new ProcessStartInfo(dotnet, arguments)
            : new ProcessStartInfo(MpiLauncher.FindMpirun(), MpiLauncher.BuildArguments(ranks, dotnet, [], arguments, MpiLauncher.RunningAsRoot()));
        start.UseShellExecute = false;
        start.RedirectStandardInput = true;
        foreach (var (key, value) in environment) start.Environment[key] = value;
        var clock = Stopwatch.StartNew();
        using var process = Process.Start(start)!;
        process.StandardInput.Close();
        process.WaitForExit();
        if (process.ExitCode != 0) throw new InvalidOperationException($"{ranks}-rank training failed with exit code {process.ExitCode}");
        Console.WriteLine($"  {ranks} rank(s): {clock.Elapsed.TotalSeconds:F1} s wall");
    }

    private static JsonNode RunJson(string outDir, string run) => JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, run, "run.json")))!;

    private static List<(int Step, double Loss, long Bytes)> Metrics(string outDir, string run) =>
        File.ReadAllLines(Path.Combine(outDir, run, "metrics.jsonl")).Where(l => l.Length > 0).Select(l => JsonNode.Parse(l)!)
            .Select(n => (n["step"]!.GetValue<int>(), n["loss"]!.GetValue<double>(), n["comm_bytes"]!.GetValue<long>())).ToList();

    /// <summary>TFNS training examples (FinLoRA's label mapping) from the shared CSV.</summary>
    private static string BuildTfns(string outDir)
    {
        var built = TaskDataBuilder.Build("tfns", [SharedPath("data/tfns/sent_train.csv")], DataSplit.Train, [], seed: 42);
        string path = Path.Combine(outDir, "tfns_train.jsonl");
        ExampleJsonl.Write(path, built.Examples.Take(512));
        return path;
    }

    private static string SharedPath(string relative)
    {
        string root = Environment.GetEnvironmentVariable("FINQLORA_SHARED") is { Length: > 0 } env ? env : Path.Combine(RepoRoot(), "..", "shared");
        string path = Path.GetFullPath(Path.Combine(root, relative));
        return File.Exists(path) || Directory.Exists(path) ? path
            : throw new UserInputException($"{path} not found; pass --model/--data or set FINQLORA_SHARED to the shared folder");
    }

    /// <summary>The newest built finqlora.dll of this checkout (Release preferred).</summary>
    private static string FindCli()
    {
        string bin = Path.Combine(RepoRoot(), "src", "FinQLoRA.Cli", "bin");
        var found = Directory.Exists(bin) ? Directory.GetFiles(bin, "finqlora.dll", SearchOption.AllDirectories) : [];
        return found.OrderByDescending(f => f.Contains("Release", StringComparison.Ordinal)).ThenByDescending(File.GetLastWriteTimeUtc).FirstOrDefault()
            ?? throw new UserInputException($"no finqlora.dll under {bin}; build it (dotnet build -c Release src/FinQLoRA.Cli) or pass --cli");
    }

    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "FinQLoRA.slnx"))) return dir.FullName;
        return Directory.GetCurrentDirectory();
    }

    private static Dictionary<string, string> Options(string[] args)
    {
        var o = new Dictionary<string, string>();
        for (int i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
                throw new UserInputException($"ddp bench: expected --option value pairs, got '{args[i]}'");
            o[args[i][2..]] = args[++i];
        }
        return o;
    }

    private static int Int(Dictionary<string, string> o, string key, int fallback) =>
        !o.TryGetValue(key, out var v) ? fallback
        : int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n > 0 ? n
        : throw new UserInputException($"ddp bench: --{key} = '{v}' is not a positive integer");

    private static string Str(int value) => value.ToString(CultureInfo.InvariantCulture);
}
