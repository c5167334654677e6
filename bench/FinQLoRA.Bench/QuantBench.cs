using System.Diagnostics;
using System.Runtime.Intrinsics.X86;
using FinQLoRA.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Bench;

/// <summary>
/// <c>quant</c>: forward+backward (to the input) of Llama-8B-shaped linears, 4-bit and 8-bit against the same layer
/// in bf16, and dequantization throughput against this machine's copy bandwidth, all measured in one run.
/// Options: <c>--quick</c> (16 and 512 tokens only, one repetition), <c>--dequant</c> (bandwidth and dequantization only).
/// </summary>
internal static class QuantBench
{
    private static readonly (string Name, int Out, int In)[] Shapes =
    [
        ("q/o 4096x4096", 4096, 4096),
        ("gate/up 14336x4096", 14336, 4096),
        ("down 4096x14336", 4096, 14336),
    ];

    public static int Run(string[] args)
    {
        bool quick = args.Contains("--quick");
        bool dequantOnly = args.Contains("--dequant");
        int[] tokens = quick ? [16, 512] : [16, 512, 2048];
        Console.WriteLine($"libtorch {__version__}, threads {get_num_threads()}, cores {Environment.ProcessorCount}, " +
                          $"AVX-512BW {Avx512BW.IsSupported}, AVX2 {Avx2.IsSupported}; dequant kernel {(Avx512BW.IsSupported ? "AVX-512" : Avx2.IsSupported ? "AVX2" : "scalar")}");
        Bandwidth(out double copyGBs);
        Console.WriteLine();
        Dequantization(copyGBs);
        Console.WriteLine();
        if (dequantOnly) return 0;
        Layers(tokens, quick ? 1 : 2);
        return 0;
    }

    /// <summary>Median wall time in ms of <paramref name="reps"/> runs after one warm-up.</summary>
    private static double Time(Action body, int reps)
    {
        body();
        var times = new List<double>();
        for (int i = 0; i < reps; i++)
        {
            var sw = Stopwatch.StartNew();
            body();
            times.Add(sw.Elapsed.TotalMilliseconds);
        }
        times.Sort();
        return times[times.Count / 2];
    }

    private static void Bandwidth(out double copyGBs)
    {
        using var scope = NewDisposeScope();
        long bytes = 512L << 20;
        Tensor src = ones(bytes / 2, ScalarType.BFloat16), dst = empty_like(src);
        double ms = Time(() => dst.copy_(src), 5);
        copyGBs = 2.0 * bytes / (ms / 1000) / 1e9; // read + write
        Console.WriteLine($"memory bandwidth (torch copy_ of 512 MiB, read+write): {copyGBs:F1} GB/s ({ms:F1} ms)");
    }

    private static void Dequantization(double copyGBs)
    {
        Console.WriteLine("dequantization to bf16 (GB/s counts packed bytes + scales read + bf16 written)");
        Console.WriteLine("  kernel: fused SIMD kernel into a reused buffer (as QuantizedLinear does); +alloc: into a fresh tensor");
        Console.WriteLine($"{"weight",-22} {"format",-8} {"kernel ms",10} {"GB/s",7} {"% of copy",10} {"+alloc ms",10} {"torch ops ms",13} {"speed-up",9}");
        foreach (var (name, outF, inF) in Shapes)
        {
            using var scope = NewDisposeScope();
            Tensor w = normal(0, 0.02, [outF, inF]).to(ScalarType.BFloat16);
            foreach (bool dq in new[] { true, false })
            {
                using var q = Quantizer.Quantize4Bit(w, FourBitType.Nf4, doubleQuant: dq);
                using var buffer = empty([outF, inF], ScalarType.BFloat16);
                double kernel = Time(() => q.DequantizeInto(buffer), 9);
                double fresh = Time(() => { using var s = NewDisposeScope(); q.Dequantize(ScalarType.BFloat16); }, 3);
                double torchOps = Time(() => { using var s = NewDisposeScope(); q.DequantizeWithTorchOps(ScalarType.BFloat16); }, 2);
                long n = q.ElementCount;
                double bytes = q.StorageBytes + 2.0 * n;
                double gbs = bytes / (kernel / 1000) / 1e9;
                Console.WriteLine($"{name,-22} {(dq ? "nf4+dq" : "nf4"),-8} {kernel,10:F2} {gbs,7:F1} {100 * gbs / copyGBs,9:F0}% {fresh,10:F1} {torchOps,13:F1} {torchOps / kernel,8:F1}x");
            }
        }
    }

    private static void Layers(int[] tokenCounts, int reps)
    {
        Console.WriteLine("forward + backward to the input (bf16 activations), median ms; ratio = quantized / bf16");
        Console.WriteLine($"{"weight",-22} {"tokens",6} {"bf16",9} {"nf4+dq",9} {"ratio",6} {"int8",9} {"ratio",6}");
        foreach (var (name, outF, inF) in Shapes)
        {
            using var shapeScope = NewDisposeScope();
            Tensor w = normal(0, 0.02, [outF, inF]).to(ScalarType.BFloat16);
            using var nf4 = new QuantizedLinear(Quantizer.Quantize(w, QuantizationOptions.Nf4));
            using var int8 = new QuantizedLinear(Quantizer.Quantize(w, QuantizationOptions.Int8), int8Threshold: 6.0);
            foreach (int t in tokenCounts)
            {
                using var scope = NewDisposeScope();
                Tensor x0 = randn(t, inF).to(ScalarType.BFloat16);
                Tensor g = randn(t, outF).to(ScalarType.BFloat16);
                double Step(Func<Tensor, Tensor> forward) => Time(() =>
                {
                    using var s = NewDisposeScope();
                    Tensor x = x0.detach().requires_grad_(true);
                    forward(x).backward([g]);
                }, t >= 2048 ? Math.Max(1, reps - 1) : reps + 1);
                double dense = Step(x => nn.functional.linear(x, w));
                double four = Step(nf4.forward);
                double eight = Step(int8.forward);
                Console.WriteLine($"{name,-22} {t,6} {dense,9:F1} {four,9:F1} {four / dense,5:F2}x {eight,9:F1} {eight / dense,5:F2}x");
            }
        }
    }
}
