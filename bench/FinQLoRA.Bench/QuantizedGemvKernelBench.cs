using System.Diagnostics;
using System.Runtime.Intrinsics;
using FinQLoRA.Models;
using FinQLoRA.Quantization;
using FinQLoRA.Quantization.Gemv;
using FinQLoRA.Runtime;
using static TorchSharp.torch;

namespace FinQLoRA.Bench;

/// <summary>
/// <c>bench generate --quantized --kernel</c>: one projection's forward at 1, 4 and 8 bf16 rows, the fused gemv against
/// the unfused path (<c>FINQLORA_FUSED_GEMV=off</c>: dequantize-then-matmul for quantized weights, libtorch's bf16
/// linear for dense ones) in the same run, on Llama-3.2-1B's projection and head shapes. "read µs" is a plain read of
/// the same bytes on the same threads (a vector sum), so fused / read says whether a kernel is bound by memory (≈ 1)
/// or by its arithmetic (&gt; 1).
/// </summary>
internal static class QuantizedGemvKernelBench
{
    public static void Run(bool quick)
    {
        int calls = quick ? 20 : 100;
        Console.WriteLine($"| {"weight",-16} | {"format",-6} | {"rows",4} | {"fused µs",9} | {"unfused µs",10} | {"speed-up",8} | {"read µs",8} | {"fused/read",10} | {"fused GB/s",10} |");
        Console.WriteLine("|------------------|--------|------|-----------|------------|----------|----------|------------|------------|");
        foreach (var (outF, inF) in new[] { (768, 768), (2048, 2048), (8192, 2048), (2048, 8192) })
        foreach (int bits in new[] { 4, 8, 16 })
        {
            using var scope = NewDisposeScope();
            Tensor w = randn([outF, inF]) * 0.02;
            QuantizedTensor? q = bits switch { 4 => Quantizer.Quantize4Bit(w, FourBitType.Nf4), 8 => Quantizer.QuantizeInt8(w), _ => null };
            Row($"{outF}×{inF}", bits, q, w, calls);
        }
        {
            // Llama 3.2 1B's tied head: 128,256 × 2048 bf16, 525 MB a token
            using var scope = NewDisposeScope();
            Row("128256×2048", 16, null, randn([128256, 2048]) * 0.02, Math.Max(5, calls / 5));
        }
    }

    private static void Row(string shape, int bits, QuantizedTensor? q, Tensor w, int calls)
    {
        Tensor dense = w.to(ScalarType.BFloat16);
        // the layer owns its own copy (a Parameter takes over the tensor it wraps)
        using nn.Module<Tensor, Tensor> layer = q is null ? new DenseLinear(dense.clone()) : new QuantizedLinear(q);
        Func<Tensor, Tensor> forward = layer.forward;
        long bytes = q?.StorageBytes ?? dense.numel() * 2;
        double read = ReadMicroseconds(q is Blockwise4BitTensor b4 ? b4.Packed : q is Int8RowwiseTensor i8 ? i8.CB : dense, calls);
        foreach (int rows in new[] { 1, 4, 8 })
        {
            Tensor x = randn([rows, w.shape[1]]).to(ScalarType.BFloat16);
            double fused = Time(forward, x, calls, fusedOn: true), unfused = Time(forward, x, Math.Max(3, calls / 10), fusedOn: false);
            string format = bits switch { 4 => "NF4", 8 => "int8", _ => "bf16" };
            Console.WriteLine($"| {shape,-16} | {format,-6} | {rows,4} | {fused,9:F0} | {unfused,10:F0} | {unfused / fused,8:F1} | {read,8:F0} | {fused / read,10:F2} | {bytes / (fused * 1e-6) / 1e9,10:F1} |");
        }
    }

    /// <summary>The fastest of <paramref name="calls"/> forwards (µs) after two untimed ones.</summary>
    private static double Time(Func<Tensor, Tensor> forward, Tensor x, int calls, bool fusedOn)
    {
        string? before = Environment.GetEnvironmentVariable(FusedGemv.EnvironmentVariable);
        Environment.SetEnvironmentVariable(FusedGemv.EnvironmentVariable, fusedOn ? null : "off");
        try
        {
            using var noGrad = no_grad();
            var times = new List<double>();
            for (int i = -2; i < calls; i++)
            {
                using var scope = NewDisposeScope();
                var sw = Stopwatch.StartNew();
                forward(x);
                if (i >= 0) times.Add(sw.Elapsed.TotalMicroseconds);
            }
            return times.Min(); // the least disturbed call: this machine is shared, and both columns are taken alike
        }
        finally
        {
            Environment.SetEnvironmentVariable(FusedGemv.EnvironmentVariable, before);
        }
    }

    /// <summary>The fastest of <paramref name="calls"/> plain reads of the tensor's bytes, split over the torch threads
    /// as the kernels split their rows (a vector sum the JIT cannot drop).</summary>
    private static unsafe double ReadMicroseconds(Tensor t, int calls)
    {
        long bytes = t.numel() * t.element_size();
        byte* data = (byte*)TensorMemory.DataPointer(t);
        int threads = Math.Max(1, get_num_threads());
        var sums = new ulong[threads];
        double best = double.MaxValue;
        for (int i = -2; i < calls; i++)
        {
            var sw = Stopwatch.StartNew();
            Parallel.For(0, threads, p =>
            {
                long from = bytes * p / threads / 64 * 64, to = bytes * (p + 1) / threads / 64 * 64;
                Vector512<ulong> acc = default;
                for (long at = from; at < to; at += 64) acc += Vector512.Load((ulong*)(data + at));
                sums[p] += Vector512.Sum(acc);
            });
            if (i >= 0) best = Math.Min(best, sw.Elapsed.TotalMicroseconds);
        }
        GC.KeepAlive(sums);
        return best;
    }
}
