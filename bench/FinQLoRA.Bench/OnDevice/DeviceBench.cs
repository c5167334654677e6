using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using FinQLoRA.Planning;
using FinQLoRA.Quantization;
using FinQLoRA.Runtime;

namespace FinQLoRA.Bench.OnDevice;

/// <summary>
/// <c>train</c>, <c>generate</c> and <c>memory</c> with <c>--device</c> (or <c>--shape</c>): FinQLoRA's side of the GPU
/// plan, on a seeded random model built on the device (<see cref="FinQLoRA.Demo.RandomModels.RandomModel"/>). Every
/// configuration runs in a child process of its own (<see cref="DeviceProbe"/>), because TorchSharp cannot empty
/// libtorch's CUDA cache: a peak measured after another configuration would be that one's. Each row's peak is the
/// child's <see cref="PeakMemoryProbe"/> figure (NVML on a GPU, VmHWM on the CPU); a child that fails (out of memory)
/// becomes a row saying so, and the next one runs. The rows also go to <c>--json</c> for scripts/gpu/compare.py.
/// </summary>
internal static class DeviceBench
{
    public const string Help = "with " + BenchDeviceOptions.Help + ": the random model built on the device, one child process per configuration, peak device memory; " +
        "train [--shapes 4x512,16x512 --bits 4 --checkpointing both --steps 3 --warmup 1 --dropout 0.1]; generate [--bits 16,8,4 --batches 1,16 --prompt 448 --decode 64]; " +
        "memory [--bits 16,8,4 --context 512] (inference, next to the planner); all: [--json FILE]";

    public static int Run(string bench, string[] args)
    {
        var d = BenchDeviceOptions.Take(args);
        var flags = Flags.Parse(d.Rest, bench);
        if (flags.Get("probe") is { } kind) return DeviceProbe.Run(d, kind, flags);
        Console.WriteLine($"device {d.Device}; random {d.ShapeName} Llama ({Parameters(d):N0} parameters, {d.Shape.NumLayers} layers, hidden {d.Shape.HiddenSize}, FFN {d.Shape.IntermediateSize}, " +
                          $"{d.Shape.NumHeads}/{d.Shape.NumKvHeads} heads, vocabulary {d.Shape.VocabSize}) built on the device; peak memory: {(d.Device.IsCuda ? "NVML memory used on the GPU above the child's start (CUDA context and libtorch's cached blocks included)" : "the child's VmHWM above its start")}");
        var rows = bench switch
        {
            "train" => Train(d, flags),
            "generate" => Generate(d, flags),
            "memory" => Memory(d, flags),
            _ => throw new UserInputException($"--device: the '{bench}' bench has no device mode; train, generate and memory have"),
        };
        if (flags.Get("json") is { } json)
        {
            var doc = new JsonObject
            {
                ["bench"] = bench, ["device"] = d.Device.ToString(), ["shape"] = d.ShapeName,
                ["parameters"] = MemoryPlanner.ParameterCount(d.Shape), ["rows"] = new JsonArray([.. rows]),
            };
            FinQLoRA.IO.AtomicFile.WriteAllText(json, doc.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            Console.WriteLine($"wrote {json}");
        }
        return rows.Any(r => r["error"] is not null) ? 1 : 0;
    }

    private static List<JsonObject> Train(BenchDeviceOptions d, Flags f)
    {
        var shapes = f.Get("shapes", "4x512,16x512").Split(',').Select(Flags.Shape).ToArray();
        int[] bits = Flags.Ints(f.Get("bits", "4"), "--bits");
        string[] gc = f.Get("checkpointing", "both") switch
        {
            "both" => ["off", "on"], "on" => ["on"], "off" => ["off"],
            var v => throw new UserInputException($"--checkpointing '{v}' is not one of on, off, both"),
        };
        string steps = f.Get("steps", "3"), warmup = f.Get("warmup", "1"), dropout = f.Get("dropout", "0.1");
        var rows = new List<JsonObject>();
        Console.WriteLine($"LoRA r4 alpha 32 dropout {dropout} on q,k,v (fp32 adapters), AdamW; bf16 compute; {warmup} warm-up and {steps} timed steps; MFU over the bf16 matmul rate the child measured");
        Console.WriteLine("| base | batch | grad ckpt | step s | tokens/s | MFU (bf16) | peak memory | after build | loss |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var (batch, seq) in shapes)
            foreach (string g in gc)
                foreach (int b in bits)
                {
                    var row = Child(d, "train", "--bits", Str(b), "--batch", Str(batch), "--seq", Str(seq), "--checkpointing", g,
                        "--steps", steps, "--warmup", warmup, "--dropout", dropout);
                    rows.Add(row);
                    string label = $"| {b}-bit | {batch}x{seq} | {g} |";
                    Console.WriteLine(row["error"] is { } e ? $"{label} {e} | | | | | |"
                        : $"{label} {D(row, "step_s"):F3} | {D(row, "tokens_per_s"):F0} | {D(row, "mfu_bf16"):P1} | {Gib(row, "peak_bytes")} | {Gib(row, "after_build_bytes")} | {D(row, "loss"):F4} |");
                }
        return rows;
    }

    private static List<JsonObject> Generate(BenchDeviceOptions d, Flags f)
    {
        int[] bits = Flags.Ints(f.Get("bits", "16,8,4"), "--bits"), batches = Flags.Ints(f.Get("batches", "1,16"), "--batches");
        string prompt = f.Get("prompt", "448"), decode = f.Get("decode", "64");
        var rows = new List<JsonObject>();
        Console.WriteLine($"greedy decoding with the KV cache: a {prompt}-token random prompt, then {decode} steps (one untimed warm-up before)");
        Console.WriteLine("| base | batch | prefill s | decode tokens/s | peak memory | after build |");
        Console.WriteLine("|---|---|---|---|---|---|");
        foreach (int b in bits)
            foreach (int batch in batches)
            {
                var row = Child(d, "inference", "--bits", Str(b), "--batch", Str(batch), "--prompt", prompt, "--decode", decode);
                rows.Add(row);
                string label = $"| {b}-bit | {batch} |";
                Console.WriteLine(row["error"] is { } e ? $"{label} {e} | | | |"
                    : $"{label} {D(row, "prefill_s"):F3} | {D(row, "decode_tokens_per_s"):F1} | {Gib(row, "peak_bytes")} | {Gib(row, "after_build_bytes")} |");
            }
        return rows;
    }

    /// <summary>The seed's planner table for Llama 3.1 8B at 16/8/4 bits (GB), printed beside the measured figures.</summary>
    private static readonly Dictionary<int, double> SeedTableGb8B = new() { [16] = 15.0, [8] = 8.6, [4] = 5.6 };

    private static List<JsonObject> Memory(BenchDeviceOptions d, Flags f)
    {
        int[] bits = Flags.Ints(f.Get("bits", "16,8,4"), "--bits");
        int context = Flags.Ints(f.Get("context", "512"), "--context")[0];
        int decode = Math.Min(64, context / 2);
        var rows = new List<JsonObject>();
        Console.WriteLine($"inference at batch 1: a {context - decode}-token prompt and {decode} decode steps ({context} tokens of context, as the planner's --context {context})");
        Console.WriteLine("| base | planned (finqlora memory) | measured peak | planned / measured | seed's table |");
        Console.WriteLine("|---|---|---|---|---|");
        foreach (int b in bits)
        {
            var row = Child(d, "inference", "--bits", Str(b), "--batch", "1", "--prompt", Str(context - decode), "--decode", Str(decode));
            var q = new QuantizationOptions(Bits: b).Validate();
            long planned = MemoryPlanner.Inference(d.Shape, q, d.ShapeName, context).TotalBytes;
            row["planned_bytes"] = planned;
            row["bits"] = b;
            string seed = "-";
            if (d.ShapeName == "8b" && SeedTableGb8B.TryGetValue(b, out double gb))
            {
                row["seed_table_gb"] = gb;
                seed = $"{gb:F1} GB";
            }
            rows.Add(row);
            Console.WriteLine(row["error"] is { } e ? $"| {b}-bit | {MemoryUsage.Format(planned)} | {e} | | {seed} |"
                : $"| {b}-bit | {MemoryUsage.Format(planned)} | {Gib(row, "peak_bytes")} | {planned / D(row, "peak_bytes"):F2} | {seed} |");
        }
        return rows;
    }

    /// <summary>Runs one configuration in a child (this bench with --probe); its last stdout line is its JSON row, or
    /// the row carries the child's error (an out-of-memory, for one).</summary>
    private static JsonObject Child(BenchDeviceOptions d, string kind, params string[] options)
    {
        var args = new List<string> { ChildBench(kind), "--device", d.Device.ToString(), "--shape", d.ShapeName, "--probe", kind };
        args.AddRange(options);
        var command = BenchProcess.SelfCommand();
        var psi = new ProcessStartInfo(command[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in command.Skip(1).Concat(args)) psi.ArgumentList.Add(a);
        var sw = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        string last = stdout.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault() ?? "";
        if (p.ExitCode == 0 && last.StartsWith('{'))
        {
            var row = JsonNode.Parse(last)!.AsObject();
            row["child_s"] = Math.Round(sw.Elapsed.TotalSeconds, 1);
            return row;
        }
        string why = (stderr.Result + "\n" + stdout.Result).Split('\n').Select(l => l.Trim())
            .FirstOrDefault(l => l.Contains("out of memory", StringComparison.OrdinalIgnoreCase)) ?? $"child exited with {p.ExitCode}";
        Console.Error.WriteLine($"{string.Join(' ', args)}: exit {p.ExitCode}\n{stdout.Result}\n{stderr.Result}");
        return new JsonObject { ["error"] = why.Length > 160 ? why[..160] : why, ["args"] = string.Join(' ', args) };
    }

    private static string ChildBench(string kind) => kind == "train" ? "train" : "generate";

    private static long Parameters(BenchDeviceOptions d) => MemoryPlanner.ParameterCount(d.Shape);

    private static string Str(int v) => v.ToString(CultureInfo.InvariantCulture);
    private static double D(JsonObject row, string key) => row[key]!.GetValue<double>();
    private static string Gib(JsonObject row, string key) => MemoryUsage.Format((long)D(row, key));
}
