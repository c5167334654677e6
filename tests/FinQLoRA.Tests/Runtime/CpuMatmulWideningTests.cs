using FinQLoRA.Runtime;
using FinQLoRA.Tests.Support;
using FinQLoRA.Tests.Training;

namespace FinQLoRA.Tests.Runtime;

/// <summary>
/// Widening 16-bit CPU matmuls to fp32 (<see cref="CpuMatmulPrecision"/>) changes only where products are summed:
/// a bf16 training run gives the losses of the native 16-bit kernels within bf16 noise, for a 16-bit and a 4-bit
/// base. Each setting runs in its own process, because the choice is made once per process.
/// </summary>
public sealed class CpuMatmulWideningTests
{
    [Theory]
    [InlineData("16")]
    [InlineData("4")]
    public void WidenedTrainingGivesTheNativeKernelsLossesWithinBf16Noise(string bits)
    {
        using var dir = new TempFolder();
        string data = TrainingRun.WriteData(dir.Path);
        List<double> Losses(string setting)
        {
            string run = Path.Combine(dir.Path, setting);
            // batch 4 × up to 48 tokens: every projection's matmul has ≥ 16 rows, so widening applies throughout
            string[] args = ["train", "--model", SeededLlama.Folder, "--data", data, "--out", run, "--batch-size", "4", "--max-steps", "5",
                "--dtype", "bf16", "--bits", bits, "--seed", "7", "--lr", "1e-3", "--warmup-steps", "2", "--max-seq-len", "48"];
            var (code, output) = CliProcess.Run(TrainingRun.Limit, new Dictionary<string, string> { [CpuMatmulPrecision.Variable] = setting }, args);
            Assert.True(code == 0, $"{setting}: exit {code}\n{output}");
            return TrainingRun.Metrics(run).Where(o => o["loss"] != null).Select(o => o["loss"]!.GetValue<double>()).ToList();
        }

        var native = Losses("native");
        var widened = Losses("fp32");
        Assert.Equal(5, native.Count);
        Assert.Equal(native.Count, widened.Count);
        // bf16 keeps 8 significant bits: a relative 2⁻⁷ covers a different rounding of the activations
        for (int i = 0; i < native.Count; i++)
            Assert.True(Math.Abs(native[i] - widened[i]) <= native[i] / 128, $"step {i + 1}: native {native[i]}, widened {widened[i]}");
    }
}
