using System.Diagnostics;
using FinQLoRA.Quantization;
using FinQLoRA.Quantization.Gemv;
using static TorchSharp.torch;

namespace FinQLoRA.Bench;

/// <summary>
/// <c>bench generate --quantized --kernel</c>: one quantized projection's forward at 1, 4 and 8 bf16 rows, the fused
/// gemv against dequantize-then-matmul (<c>FINQLORA_FUSED_GEMV=off</c>) in the same run, on Llama-3.2-1B's projection
/// shapes, with the weight bytes read per second by the fused kernel.
/// </summary>
internal static class QuantizedGemvKernelBench
{
    public static void Run(bool quick)
    {
        int calls = quick ? 20 : 100;
        Console.WriteLine($"| {"weight",-16} | {"format",-6} | {"rows",4} | {"fused µs",9} | {"unfused µs",10} | {"speed-up",8} | {"fused GB/s",10} |");
        Console.WriteLine("|------------------|--------|------|-----------|------------|----------|------------|");
        foreach (var (outF, inF) in new[] { (768, 768), (2048, 2048), (8192, 2048), (2048, 8192) })
        foreach (int bits in new[] { 4, 8 })
        {
            using var scope = NewDisposeScope();
            Tensor w = randn([outF, inF]) * 0.02;
            QuantizedTensor q = bits == 4 ? Quantizer.Quantize4Bit(w, FourBitType.Nf4) : Quantizer.QuantizeInt8(w);
            using var layer = new QuantizedLinear(q);
            foreach (int rows in new[] { 1, 4, 8 })
            {
                Tensor x = randn([rows, inF]).to(ScalarType.BFloat16);
                double fused = Time(layer, x, calls, fusedOn: true), unfused = Time(layer, x, Math.Max(3, calls / 10), fusedOn: false);
                double gbps = q.StorageBytes / (fused * 1e-6) / 1e9;
                Console.WriteLine($"| {$"{outF}×{inF}",-16} | {(bits == 4 ? "NF4" : "int8"),-6} | {rows,4} | {fused,9:F0} | {unfused,10:F0} | {unfused / fused,8:F1} | {gbps,10:F1} |");
            }
        }
    }

    /// <summary>The fastest of <paramref name="calls"/> forwards (µs) after two untimed ones.</summary>
    private static double Time(QuantizedLinear layer, Tensor x, int calls, bool fusedOn)
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
                layer.forward(x);
                if (i >= 0) times.Add(sw.Elapsed.TotalMicroseconds);
            }
            return times.Min(); // the least disturbed call: this machine is shared, and both columns are taken alike
        }
        finally
        {
            Environment.SetEnvironmentVariable(FusedGemv.EnvironmentVariable, before);
        }
    }
}
