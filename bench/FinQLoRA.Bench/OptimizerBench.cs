using System.Diagnostics;
using FinQLoRA.Training.Optimizers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FinQLoRA.Bench;

/// <summary>
/// <c>optimizer</c>: one AdamW step over the 72 LoRA r4 tensors of a 12-layer, 768-hidden model (q/k/v, k and v with
/// 256 outputs), the per-tensor step it replaced against the flat-buffer <see cref="AdamWOptimizer"/>, median of many
/// repeats. Options: <c>--repeats N</c> (default 300).
/// </summary>
internal static class OptimizerBench
{
    public const string Help = "AdamW step over 72 LoRA r4 tensors (768 hidden): per-tensor vs fused flat buffers [--repeats N]";

    private const int Layers = 12, Rank = 4, Hidden = 768, KvOut = 256;

    public static int Run(string[] args)
    {
        int at = Array.IndexOf(args, "--repeats");
        int repeats = at >= 0 && at + 1 < args.Length ? int.Parse(args[at + 1]) : 300;
        var options = new AdamWOptions(WeightDecay: 0.01);
        Console.WriteLine($"libtorch {__version__}, threads {get_num_threads()}, cores {Environment.ProcessorCount}");

        var perTensor = NewParameters();
        var fused = NewParameters();
        using var baseline = new PerTensorAdamW(perTensor, options);
        using var optimizer = new AdamWOptimizer(fused.Select((p, i) => ($"p{i}", p)), options);
        var (perTensorMs, fusedMs) = MedianMs(() => baseline.Step(1e-4), () => optimizer.Step(1e-4), repeats);

        // Both took the same number of steps from the same values with the same gradients: they must agree exactly.
        bool identical = perTensor.Zip(fused).All(pair => { using var scope = NewDisposeScope(); return pair.First.equal(pair.Second).all().item<bool>(); });
        Console.WriteLine($"{perTensor.Length} tensors, {perTensor.Sum(p => p.numel())} elements; {repeats + 1} steps each, interleaved, bit-identical: {identical}");
        Console.WriteLine($"{"per-tensor",-12} {perTensorMs,8:F3} ms/step");
        Console.WriteLine($"{"fused",-12} {fusedMs,8:F3} ms/step   ({perTensorMs / fusedMs:F1}x faster)");
        return identical ? 0 : 1;
    }

    /// <summary>lora_A [r, in] and lora_B [out, r] for q, k, v of every layer, with fixed random values and gradients.</summary>
    private static Parameter[] NewParameters()
    {
        var generator = new Generator(42);
        var shapes = Enumerable.Range(0, Layers).SelectMany(_ => new[] { Hidden, KvOut, KvOut })
            .SelectMany(outputs => new long[][] { [Rank, Hidden], [outputs, Rank] });
        return shapes.Select(shape =>
        {
            var p = new Parameter(randn(shape, generator: generator).DetachFromDisposeScope(), requires_grad: true);
            using (no_grad()) p.grad = randn(shape, generator: generator).DetachFromDisposeScope();
            return p;
        }).ToArray();
    }

    /// <summary>
    /// Median wall times in ms of <paramref name="repeats"/> runs of each after one warm-up, the two interleaved so
    /// that both see the same load on a shared machine.
    /// </summary>
    private static (double First, double Second) MedianMs(Action first, Action second, int repeats)
    {
        first();
        second();
        var times = new double[2][];
        times[0] = new double[repeats];
        times[1] = new double[repeats];
        for (int i = 0; i < repeats; i++)
        {
            long start = Stopwatch.GetTimestamp();
            first();
            long middle = Stopwatch.GetTimestamp();
            second();
            times[0][i] = Stopwatch.GetElapsedTime(start, middle).TotalMilliseconds;
            times[1][i] = Stopwatch.GetElapsedTime(middle).TotalMilliseconds;
        }
        foreach (var t in times) Array.Sort(t);
        return (times[0][repeats / 2], times[1][repeats / 2]);
    }

    /// <summary>The AdamW step as it was before the flat buffers: the same ops, once per parameter tensor.</summary>
    private sealed class PerTensorAdamW(Parameter[] parameters, AdamWOptions options) : IDisposable
    {
        private readonly Tensor[] _expAvg = parameters.Select(p => zeros_like(p).DetachFromDisposeScope()).ToArray();
        private readonly Tensor[] _expAvgSq = parameters.Select(p => zeros_like(p).DetachFromDisposeScope()).ToArray();
        private long _step;

        public void Step(double lr)
        {
            double beta1 = options.Beta1, beta2 = options.Beta2;
            long step = ++_step;
            using var noGrad = no_grad();
            for (int i = 0; i < parameters.Length; i++)
            {
                using var scope = NewDisposeScope();
                var parameter = parameters[i];
                if (parameter.grad is not { } grad) continue;
                if (options.WeightDecay != 0) parameter.mul_(1 - lr * options.WeightDecay);
                _expAvg[i].lerp_(grad, 1 - beta1);
                _expAvgSq[i].mul_(beta2).addcmul_(grad, grad, value: 1 - beta2);
                double stepSize = lr / (1 - Math.Pow(beta1, step));
                double biasCorrection2Sqrt = Math.Pow(1 - Math.Pow(beta2, step), 0.5);
                Tensor denom = _expAvgSq[i].sqrt().div_(biasCorrection2Sqrt).add_(options.Eps);
                parameter.addcdiv_(_expAvg[i], denom, value: -stepSize);
            }
        }

        public void Dispose()
        {
            foreach (var t in _expAvg) t.Dispose();
            foreach (var t in _expAvgSq) t.Dispose();
        }
    }
}
