using FinQLoRA.Loading;
using System.Diagnostics;
using System.Globalization;
using FinQLoRA.Adapters;
using FinQLoRA.Demo;
using FinQLoRA.Models;
using FinQLoRA.Quantization;
using FinQLoRA.Runtime;
using FinQLoRA.Training.Optimizers;
using static TorchSharp.torch;

namespace FinQLoRA.Bench;

/// <summary>
/// <c>train</c>: tokens/s of one QLoRA training step (forward, backward, AdamW on rank-4 q/k/v adapters) on a ~100M
/// random Llama with a 16-, 8- and 4-bit frozen base (bf16 compute), with and without gradient checkpointing.
/// Each step is split into weights (writing frozen weights as the matmuls use them: dequantizing, or where the CPU
/// widens 16-bit matmuls copying into fp32), base matmuls, optimizer and the rest: the optimizer is timed in place,
/// weights and matmuls by micro-benchmarks of exactly the step's pieces (every projection's weight written once, every
/// x·Wᵀ and grad·W at the step's shapes), repeated as often as the step runs them. MFU is the model's FLOPs per step
/// over the bf16 matmul rate measured in this run. Peak RSS with/without checkpointing comes from child processes.
/// </summary>
internal static class TrainStepBench
{
    public const string Help = "training step tokens/s at 4/8/16-bit, ± grad checkpointing; time shares; MFU (over the faster of bf16 and fp32 GEMM); loss after the steps; peak RSS [--shapes 2x128,4x256 --bits 16,8,4 --checkpointing both --steps 5 --rss true --ops-detail false --ops-by-module false --before false]; --before true: the same rows first with FINQLORA_FUSED_STEP=off (child process) and the ratios; ops per layer per step need scripts/profile/aten-probes.sh (root)";

    private static readonly ModelConfig Model100M = new()
    {
        HiddenSize = 768, IntermediateSize = 2048, NumLayers = 12, NumHeads = 12, NumKvHeads = 4, HeadDim = 64,
        VocabSize = 16000, MaxPositionEmbeddings = 1024, TieWordEmbeddings = false, BosTokenId = 1, EosTokenIds = [2],
    };

    private static readonly LoraConfig Paper = new() { Rank = 4, Alpha = 32, Dropout = 0.1, TargetModules = ["q_proj", "k_proj", "v_proj"] };

    public static int Run(string[] args)
    {
        var o = Options.Parse(args);
        if (o.RssProbe is { } probe) return RssProbe(o, probe);
        set_num_threads(Environment.ProcessorCount);
        // --before: the same rows first in a child process with FINQLORA_FUSED_STEP=off, the step as it was before the
        // fusions of issue 26 (malloc's default heap cannot be restored in this process once it has been tuned)
        string? before = o.Before && TrainingFusions.Enabled ? UnfusedChild(args) : null;
        TrainingHeap.Retain(); // as the trainer does (FineTuneRecipe); not with FINQLORA_FUSED_STEP=off
        string folder = ModelFolder();
        var (n, linearParams) = Count();
        Console.WriteLine($"model: random Llama {n / 1e6:F0}M parameters ({linearParams / 1e6:F0}M in linear layers), {Model100M.NumLayers} layers, hidden {Model100M.HiddenSize}; LoRA r4 q,k,v; bf16 compute; {Environment.ProcessorCount} threads");
        Console.WriteLine($"fused training step: {(TrainingFusions.Enabled ? "on" : "off")} ({TrainingFusions.Variable}={Environment.GetEnvironmentVariable(TrainingFusions.Variable) ?? "unset"}); malloc keeps freed pages: {(TrainingHeap.Retained ? "yes" : "no")}");
        Console.WriteLine($"16-bit CPU matmuls: {(CpuMatmulPrecision.WidensHalfPrecision ? "widened to fp32" : "native 16-bit kernels")} ({CpuMatmulPrecision.Variable}={Environment.GetEnvironmentVariable(CpuMatmulPrecision.Variable) ?? "unset"})");

        // The machine's limit is its fastest dense GEMM: bf16 where the CPU has a bf16 kernel, fp32 where it has not.
        // This shared VM's speed drifts by tens of percent over minutes (a rate once caught in a slow moment gave an MFU
        // above 100 %), so the rate is sampled in short windows before, between and after the rows, under the same
        // conditions as the steps, and MFU is over the median of all of them.
        var bf16Windows = MatmulRates(ScalarType.BFloat16, 1024, 3);
        var fp32Windows = MatmulRates(ScalarType.Float32, 1024, 3);
        var fastest = Median([.. bf16Windows.Order()]) >= Median([.. fp32Windows.Order()]) ? ScalarType.BFloat16 : ScalarType.Float32;
        var windows = fastest == ScalarType.BFloat16 ? bf16Windows : fp32Windows;
        Console.WriteLine($"measured matmul rate (1024^3, median of 3 windows): bf16 {Median([.. bf16Windows.Order()]) / 1e9:F1} GFLOP/s, fp32 {Median([.. fp32Windows.Order()]) / 1e9:F1} GFLOP/s");

        var rows = new List<Row>();
        foreach (var (batch, seq) in o.Shapes)
        {
            // FLOPs a step must do: forward 2·N·tokens, backward only the input gradients of the frozen base, 2·N·tokens,
            // plus attention (fwd QKᵀ and AV: 4·B·T²·d per layer; bwd twice that). Checkpointing's recompute is not counted.
            long tokens = (long)batch * seq;
            double attention = 12.0 * batch * seq * (double)seq * Model100M.HiddenSize * Model100M.NumLayers;
            double modelFlops = 4.0 * linearParams * tokens + attention;
            foreach (bool gc in o.Checkpointing)
            {
                // A fresh model and adapters per width; their steps alternate, so that drift in this shared machine's
                // speed falls on every width alike, and each step's dropout is seeded, so every loss is reproducible.
                var runs = o.Bits.Select(bits =>
                {
                    var model = ModelLoading.LoadModel(folder, new ModelLoadOptions { DType = ScalarType.BFloat16 }.WithBits(bits));
                    LoraInjector.Apply(model, Paper, seed: 1);
                    model.GradientCheckpointing = gc;
                    return (Bits: bits, Model: model, Optimizer: new AdamWOptimizer(LoraInjector.AdapterParameters(model).ToList(), new AdamWOptions(WeightDecay: 0)));
                }).ToList();
                var measured = TimeSteps(runs.Select(r => (r.Model, r.Optimizer)).ToList(), batch, seq, o.Steps);
                windows.AddRange(MatmulRates(fastest, 1024, 1));
                // one more step per model with the op probes on (after the timed ones: the probes slow every op)
                var ops = runs.Select(r => CountOps(r.Model, r.Optimizer, batch, seq, o.Steps, $"{batch}x{seq} {r.Bits}-bit ckpt {(gc ? "on" : "off")}", o.OpsDetail)).ToList();
                if (o.OpsByModule)
                    foreach (var r in runs) TrainOpsByModule.Print(r.Model, batch, seq, $"{batch}x{seq} {r.Bits}-bit", o.OpsDetail);
                for (int i = 0; i < runs.Count; i++)
                {
                    var (bits, model, optimizer) = runs[i];
                    var m = measured[i];
                    int passes = gc ? 3 : 2; // forward, backward (grad·W), and with checkpointing the recomputed forward
                    double matmul = MatmulSeconds(model, tokens, passes);
                    // 8-bit forwards run LLM.int8 (int8 matmul, counted in "other"); only backward dequantizes.
                    double dequant = WeightSeconds(model) * (bits == 8 ? 1 : passes);
                    Console.Error.WriteLine($"  {batch}x{seq} {bits}-bit, checkpointing {(gc ? "on" : "off")}: step {m.Step:F2} s, loss after {o.Steps} steps {m.Loss:F4}");
                    rows.Add(new Row($"{batch}x{seq}", bits, gc, m, tokens / m.Step, dequant / m.Step, matmul / m.Step, modelFlops) { Ops = ops[i] });
                    optimizer.Dispose();
                    model.Dispose();
                }
            }
        }

        windows.AddRange(MatmulRates(fastest, 1024, 3));
        var sorted = windows.Order().ToArray();
        double peak = Median(sorted);
        Console.WriteLine($"{(fastest == ScalarType.BFloat16 ? "bf16" : "fp32")} matmul rate over {sorted.Length} windows before, between and after the rows: {sorted[0] / 1e9:F1}–{sorted[^1] / 1e9:F1} GFLOP/s; MFU is over their median, {peak / 1e9:F1} GFLOP/s");
        Console.WriteLine();
        if (!AtenOpCounter.Available) Console.WriteLine($"ops per layer per step: n/a ({AtenOpCounter.HowToEnable})");
        Console.WriteLine($"| batch | base | grad ckpt | step s | fwd s | bwd s | tokens/s | vs 16-bit | weights | matmul | optimizer | other | MFU | ops/layer/step | loss after {o.Steps} steps |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var r in rows)
        {
            var baseline = rows.First(x => x.Shape == r.Shape && x.Bits == 16 && x.Gc == r.Gc);
            double optimizerShare = r.Measured.Optimizer / r.Measured.Step;
            double other = Math.Max(0, 1 - r.Dequant - r.Matmul - optimizerShare);
            Console.WriteLine($"| {r.Shape} | {r.Bits}-bit | {(r.Gc ? "on" : "off")} | {r.Measured.Step:F3} | {r.Measured.Forward:F3} | {r.Measured.Backward:F3} | {r.TokensPerSecond:F0} | {r.Measured.Step / baseline.Measured.Step:F2}x | {r.Dequant:P0} | {r.Matmul:P0} | {optimizerShare:P1} | {other:P0} | {r.Mfu(peak):P1} | {r.OpsPerLayer} | {r.Measured.Loss:F4} |");
        }
        foreach (var shape in rows.Select(r => r.Shape).Distinct())
            foreach (bool gc in o.Checkpointing)
            {
                Row? Of(int bits) => rows.FirstOrDefault(r => r.Shape == shape && r.Bits == bits && r.Gc == gc);
                if (Of(4) is null) continue;
                double goal = gc ? 0.40 : 0.50;
                string c = gc ? "on" : "off";
                Console.WriteLine($"goal {shape}, checkpointing {c}: MFU >= {goal:P0}: 16-bit {Of(16)!.Mfu(peak):P1} {Verdict(Of(16)!.Mfu(peak) >= goal)}, 4-bit {Of(4)!.Mfu(peak):P1} {Verdict(Of(4)!.Mfu(peak) >= goal)}");
                // Judged on the rounds' ratios, not on the means: the two steps of a round ran next to each other, so the
                // machine's drift over the minutes of a row, which the means carry, mostly cancels in each ratio.
                var ratios = Of(16)!.Measured.Steps.Zip(Of(4)!.Measured.Steps, (a, b) => a / b).Order().ToArray();
                double median = Median(ratios);
                Console.WriteLine($"goal {shape}, checkpointing {c}: 16-bit step <= 4-bit step: means {Of(16)!.Measured.Step:F3} vs {Of(4)!.Measured.Step:F3} s; 16-bit/4-bit of each round (sorted) {string.Join(" ", ratios.Select(r => r.ToString("F3", CultureInfo.InvariantCulture)))}, median {median:F3} {Verdict(median <= 1)}; weights written per step {Of(16)!.WeightSeconds * 1e3:F0} vs {Of(4)!.WeightSeconds * 1e3:F0} ms");
            }

        if (before is not null) PrintBefore(before, rows);
        if (!o.Rss) return 0;
        Console.WriteLine();
        Console.WriteLine($"peak RSS of one 4-bit training step, batch {o.RssBatch}x{o.RssSeq} (separate processes, VmHWM reset after loading):");
        foreach (string mode in new[] { "nogc", "gc" })
            Console.WriteLine($"  grad checkpointing {(mode == "gc" ? "on " : "off")}: {Child(o, mode)}");
        return 0;
    }

    private static string Verdict(bool met) => met ? "MET" : "NOT MET";

    private static double Median(double[] sorted) =>
        sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;

    /// <summary>Means over the timed steps, each timed step's own time (<see cref="Steps"/>, in the order they ran), and
    /// the loss after the last step.</summary>
    private sealed record Measured(double Step, double Forward, double Backward, double Optimizer, double Loss)
    {
        public double[] Steps { get; init; } = [];
    }

    private sealed record Row(string Shape, int Bits, bool Gc, Measured Measured, double TokensPerSecond, double Dequant, double Matmul, double ModelFlops)
    {
        /// <summary>ATen ops of one step (<see cref="AtenOpCounter"/>), null without the probes.</summary>
        public int? Ops { get; init; }
        public string OpsPerLayer => Ops is int n ? (n / (double)Model100M.NumLayers).ToString("F0", CultureInfo.InvariantCulture) : "n/a";
        public double WeightSeconds => Dequant * Measured.Step;
        public double Mfu(double peakFlopsPerSecond) => ModelFlops / Measured.Step / peakFlopsPerSecond;
    }

    private sealed record Options((int Batch, int Seq)[] Shapes, int[] Bits, bool[] Checkpointing, int Steps, bool Rss, int RssBatch, int RssSeq, string? RssProbe, bool OpsDetail = false, bool Before = false, bool OpsByModule = false)
    {
        public static Options Parse(string[] args)
        {
            var o = new Options([(2, 128), (4, 256)], [16, 8, 4], [false, true], 5, true, 4, 256, null);
            for (int i = 0; i + 1 < args.Length; i += 2)
            {
                int v() => int.Parse(args[i + 1], CultureInfo.InvariantCulture);
                o = args[i] switch
                {
                    "--shapes" => o with { Shapes = ParseShapes(args[i + 1]) }, "--steps" => o with { Steps = v() },
                    "--bits" => o with { Bits = args[i + 1].Split(',').Select(b => int.Parse(b, CultureInfo.InvariantCulture)).ToArray() },
                    "--rss" => o with { Rss = bool.Parse(args[i + 1]) },
                    "--checkpointing" => o with { Checkpointing = args[i + 1] switch { "off" => [false], "on" => [true], _ => [false, true] } },
                    "--rss-batch" => o with { RssBatch = v() }, "--rss-seq" => o with { RssSeq = v() },
                    "--rss-probe" => o with { RssProbe = args[i + 1] },
                    "--ops-detail" => o with { OpsDetail = bool.Parse(args[i + 1]) },
                    "--before" => o with { Before = bool.Parse(args[i + 1]) },
                    "--ops-by-module" => o with { OpsByModule = bool.Parse(args[i + 1]) },
                    _ => throw new ArgumentException($"unknown option {args[i]}"),
                };
            }
            if (!o.Bits.Contains(16)) throw new ArgumentException("--bits must include 16 (the baseline of the ratios)");
            if (o.Steps < 2) throw new ArgumentException("--steps must be at least 2 (the first step is a warm-up)");
            return o;
        }

        /// <summary>"2x128,4x256" → [(2, 128), (4, 256)].</summary>
        private static (int, int)[] ParseShapes(string text) => text.Split(',').Select(part =>
        {
            var bt = part.Split('x');
            return (int.Parse(bt[0], CultureInfo.InvariantCulture), int.Parse(bt[1], CultureInfo.InvariantCulture));
        }).ToArray();
    }

    private static string ModelFolder()
    {
        string folder = Path.Combine(Path.GetTempPath(), "finqlora-bench-train-100m");
        if (!File.Exists(Path.Combine(folder, "config.json")))
            RandomLlama.WriteHfFolder(Model100M, folder, seed: 1, ScalarType.BFloat16);
        return folder;
    }

    private static (long Total, long Linear) Count()
    {
        long h = Model100M.HiddenSize, f = Model100M.IntermediateSize, kv = Model100M.NumKvHeads * (long)Model100M.HeadDim;
        long perLayer = 2 * h * h + 2 * h * kv + 3 * h * f;
        long linear = perLayer * Model100M.NumLayers + Model100M.VocabSize * h; // + lm_head
        return (linear + Model100M.VocabSize * h, linear);
    }

    private static Tensor Ids(int batch, int seq, long seed)
    {
        using var g = new Generator((ulong)seed);
        return randint(3, Model100M.VocabSize, [batch, seq], generator: g);
    }

    /// <summary>One full step: forward and next-token loss, backward, AdamW, zero grads.</summary>
    private static Measured Step(DecoderModel model, AdamWOptimizer optimizer, Tensor ids)
    {
        var total = Stopwatch.StartNew();
        double forward, loss;
        using (var scope = NewDisposeScope())
        {
            var logits = model.Forward(ids);
            long t = ids.shape[1];
            var l = nn.functional.cross_entropy(logits.narrow(1, 0, t - 1).reshape(-1, logits.shape[2]), ids.narrow(1, 1, t - 1).reshape(-1));
            loss = l.item<float>();
            forward = total.Elapsed.TotalSeconds;
            l.backward();
        }
        double backward = total.Elapsed.TotalSeconds - forward;
        var opt = Stopwatch.StartNew();
        optimizer.Step(1e-4);
        optimizer.ZeroGrad();
        return new Measured(total.Elapsed.TotalSeconds, forward, backward, opt.Elapsed.TotalSeconds, loss);
    }

    /// <summary>The ATen ops of one more step (seeded as step <paramref name="step"/> + 1), or null without the probes;
    /// with <paramref name="detail"/> each op's count goes to stderr, most frequent first.</summary>
    private static int? CountOps(DecoderModel model, AdamWOptimizer optimizer, int batch, int seq, int step, string label, bool detail)
    {
        if (!AtenOpCounter.Available) return null;
        using var ids = Ids(batch, seq, 7);
        model.train();
        manual_seed(step + 1);
        var counts = AtenOpCounter.Count(() => Step(model, optimizer, ids));
        if (detail)
            foreach (var (op, n) in counts.OrderByDescending(kv => kv.Value))
                Console.Error.WriteLine($"  ops {label}: {op} {n}");
        return counts.Values.Sum();
    }

    /// <summary>Runs <paramref name="steps"/> steps on the same batch for each model in turn (step 1 of every model, then
    /// step 2, …), seeding the RNG (LoRA dropout) per step; times all but the first (a warm-up: allocator, kernels) and
    /// reports each model's last loss. The order of the models reverses every step (16, 8, 4, then 4, 8, 16): on this
    /// shared VM a step's time depends on which model ran just before it by up to 5 %, more than the gap between 16-
    /// and 4-bit, and a fixed order charged it to the same width every time.</summary>
    private static List<Measured> TimeSteps(List<(DecoderModel Model, AdamWOptimizer Optimizer)> runs, int batch, int seq, int steps)
    {
        using var ids = Ids(batch, seq, 7);
        var sums = new Measured[runs.Count];
        var last = new Measured[runs.Count];
        var each = runs.Select(_ => new List<double>()).ToArray();
        for (int step = 0; step < steps; step++)
            for (int k = 0; k < runs.Count; k++)
            {
                int i = step % 2 == 0 ? k : runs.Count - 1 - k;
                runs[i].Model.train();
                manual_seed(step + 1);
                last[i] = Step(runs[i].Model, runs[i].Optimizer, ids);
                if (step == 0) continue;
                each[i].Add(last[i].Step);
                var s = sums[i] ?? new Measured(0, 0, 0, 0, 0);
                sums[i] = new Measured(s.Step + last[i].Step, s.Forward + last[i].Forward, s.Backward + last[i].Backward, s.Optimizer + last[i].Optimizer, 0);
            }
        int timed = steps - 1;
        return sums.Select((s, i) => new Measured(s.Step / timed, s.Forward / timed, s.Backward / timed, s.Optimizer / timed, last[i].Loss) { Steps = each[i].ToArray() }).ToList();
    }

    private static IEnumerable<nn.Module<Tensor, Tensor>> BaseProjections(DecoderModel model)
    {
        foreach (var layer in model.Layers)
            foreach (var p in model.Config.Family.Projections)
                yield return layer[p] is LoraLinear lora ? lora.BaseLayer : layer[p];
        if (model.LmHead is { } head) yield return head;
    }

    /// <summary>Seconds to write every frozen weight once as the step's matmuls use it: where the CPU widens 16-bit
    /// matmuls, into an fp32 buffer (a copy for dense weights, the head included, and 4-bit dequantized straight to its
    /// bf16 values); elsewhere quantized weights dequantized to bf16 and dense ones used in place (0).</summary>
    private static double WeightSeconds(DecoderModel model)
    {
        var bases = BaseProjections(model).Cast<IFrozenLinear>().ToList();
        bool widened = CpuMatmulPrecision.WidensHalfPrecision;
        using var buffer = empty([bases.Max(b => b.OutFeatures * b.InFeatures)], ScalarType.Float32);
        double best = double.MaxValue;
        for (int rep = 0; rep < 3; rep++)
        {
            var sw = Stopwatch.StartNew();
            foreach (var b in bases)
            {
                using var scope = NewDisposeScope(); // the narrowed view and its reshape, every weight of every rep
                if (widened && b.CanWriteWeight(ScalarType.BFloat16))
                    b.WriteWeight(buffer.narrow(0, 0, b.OutFeatures * b.InFeatures).view(b.OutFeatures, b.InFeatures), ScalarType.BFloat16);
                else if (b is QuantizedLinear) b.DequantizedWeight(ScalarType.BFloat16);
            }
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        return best;
    }

    /// <summary>Seconds of the step's base matmuls in the dtype they run in (bf16, or fp32 where the CPU widens them:
    /// <see cref="CpuMatmulPrecision"/>): per projection x[tokens, in]·Wᵀ, and grad[tokens, out]·W,
    /// <paramref name="passes"/> matmuls in all (the recomputed forward with checkpointing). Widening copies are in "weights".</summary>
    private static double MatmulSeconds(DecoderModel model, long tokens, int passes)
    {
        var shapes = BaseProjections(model).Select(m => m is IFrozenLinear f ? (f.OutFeatures, f.InFeatures) : throw new InvalidOperationException())
            .GroupBy(s => s).Select(g => (Shape: g.Key, Count: g.Count())).ToList();
        double total = 0;
        foreach (var ((outF, inF), count) in shapes)
        {
            using var scope = NewDisposeScope();
            var dtype = CpuMatmulPrecision.MatmulDType(zeros([tokens, inF], ScalarType.BFloat16));
            var w = randn([outF, inF]).to(dtype);
            var x = randn([tokens, inF]).to(dtype);
            var g = randn([tokens, outF]).to(dtype);
            x.matmul(w.t()); g.matmul(w); // warm-up
            double best = double.MaxValue;
            for (int rep = 0; rep < 3; rep++)
            {
                var sw = Stopwatch.StartNew();
                using (var y = x.matmul(w.t())) { }
                double fwd = sw.Elapsed.TotalSeconds;
                sw.Restart();
                using (var gx = g.matmul(w)) { }
                double bwd = sw.Elapsed.TotalSeconds;
                best = Math.Min(best, fwd * (passes - 1) + bwd);
            }
            total += best * count;
        }
        return total;
    }

    /// <summary>The rates of <paramref name="windows"/> windows of at least 0.5 s (and one matmul) each.</summary>
    private static List<double> MatmulRates(ScalarType dtype, int n, int windows)
    {
        using var scope = NewDisposeScope();
        var a = randn([n, n]).to(dtype);
        var b = randn([n, n]).to(dtype);
        a.matmul(b).Dispose();
        var rates = new List<double>();
        for (int window = 0; window < windows; window++)
        {
            int reps = 0;
            var sw = Stopwatch.StartNew();
            while (sw.Elapsed.TotalSeconds < 0.5 || reps < 1) { a.matmul(b).Dispose(); reps++; }
            rates.Add(2.0 * n * n * (double)n * reps / sw.Elapsed.TotalSeconds);
        }
        return rates;
    }

    /// <summary>This bench's table rows run by a child with <see cref="TrainingFusions.Variable"/>=off (its whole stdout).</summary>
    private static string UnfusedChild(string[] args)
    {
        var command = BenchProcess.SelfCommand();
        var psi = new ProcessStartInfo(command[0]) { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.Environment[TrainingFusions.Variable] = "off";
        var own = new List<string>(args);
        int at = own.IndexOf("--before");
        own.RemoveRange(at, 2);
        foreach (string a in command.Skip(1).Append("train").Concat(own).Concat(["--rss", "false"])) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"the unfused child failed ({p.ExitCode}): {stderr.Result}");
        return stdout;
    }

    /// <summary>The child's rows (the step before the fusions) and, per row, step time and ops before over after.</summary>
    private static void PrintBefore(string childOutput, List<Row> rows)
    {
        Console.WriteLine();
        Console.WriteLine($"before (a child process with {TrainingFusions.Variable}=off, run just before the rows above):");
        var table = childOutput.Split('\n').Where(l => l.StartsWith("| ", StringComparison.Ordinal) || l.StartsWith("|---", StringComparison.Ordinal) || l.StartsWith("bf16 matmul rate", StringComparison.Ordinal) || l.StartsWith("fp32 matmul rate", StringComparison.Ordinal)).ToList();
        foreach (string line in table) Console.WriteLine(line);
        foreach (var r in rows)
        {
            var cells = table.Select(l => l.Split('|').Select(c => c.Trim()).ToArray())
                .FirstOrDefault(c => c.Length > 15 && c[1] == r.Shape && c[2] == $"{r.Bits}-bit" && c[3] == (r.Gc ? "on" : "off"));
            if (cells is null) continue;
            double step = double.Parse(cells[4], CultureInfo.InvariantCulture);
            string ops = cells[14] != "n/a" && r.Ops is int n ? $"ops per layer per step {cells[14]} -> {r.OpsPerLayer} ({n / Model100M.NumLayers / double.Parse(cells[14], CultureInfo.InvariantCulture):P0} of before)" : "ops n/a";
            Console.WriteLine($"before/after {r.Shape} {r.Bits}-bit ckpt {(r.Gc ? "on" : "off")}: step {step:F3} -> {r.Measured.Step:F3} s ({step / r.Measured.Step:F2}x faster); {ops}; loss {cells[15]} -> {r.Measured.Loss:F4}");
        }
    }

    /// <summary>Runs this benchmark as a child process in probe mode and returns its one-line report.</summary>
    private static string Child(Options o, string mode)
    {
        string self = Environment.ProcessPath!;
        var psi = new ProcessStartInfo(self) { RedirectStandardOutput = true, RedirectStandardError = true };
        if (Path.GetFileNameWithoutExtension(self) == "dotnet") psi.ArgumentList.Add(typeof(TrainStepBench).Assembly.Location);
        foreach (string a in new[] { "train", "--rss-probe", mode, "--rss-batch", o.RssBatch.ToString(CultureInfo.InvariantCulture), "--rss-seq", o.RssSeq.ToString(CultureInfo.InvariantCulture) })
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string stdout = p.StandardOutput.ReadToEnd();
        string stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        return p.ExitCode == 0 ? stdout.Trim() : $"probe failed ({p.ExitCode}): {stderr.Trim()}";
    }

    /// <summary>Child: load the 4-bit model, reset the peak-RSS mark, run one step, print the peak.</summary>
    private static int RssProbe(Options o, string mode)
    {
        set_num_threads(Environment.ProcessorCount);
        using var model = ModelLoading.LoadModel(ModelFolder(), new ModelLoadOptions { DType = ScalarType.BFloat16 }.WithBits(4));
        LoraInjector.Apply(model, Paper, seed: 1);
        model.GradientCheckpointing = mode == "gc";
        model.train();
        using var optimizer = new AdamWOptimizer(LoraInjector.AdapterParameters(model).ToList(), new AdamWOptions(WeightDecay: 0));
        using var ids = Ids(o.RssBatch, o.RssSeq, 7);
        long afterLoad = MemoryUsage.CurrentRssBytes;
        // Writing 5 to clear_refs resets VmHWM to the current RSS, so the peak below is the step's own.
        bool reset;
        try { File.WriteAllText("/proc/self/clear_refs", "5"); reset = true; } catch (IOException) { reset = false; } catch (UnauthorizedAccessException) { reset = false; }
        var sw = Stopwatch.StartNew();
        Step(model, optimizer, ids);
        long peak = MemoryUsage.PeakRssBytes;
        Console.WriteLine($"RSS after load {MemoryUsage.Format(afterLoad)}, peak during the step {MemoryUsage.Format(peak)} (+{MemoryUsage.Format(peak - afterLoad)}){(reset ? "" : " [VmHWM not reset: includes loading]")}, step {sw.Elapsed.TotalSeconds:F1} s");
        return 0;
    }
}
