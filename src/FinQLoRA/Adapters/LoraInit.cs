using static TorchSharp.torch;

namespace FinQLoRA.Adapters;

/// <summary>
/// PEFT's default initialisation (<c>init_lora_weights=True</c>): A from <c>kaiming_uniform_(a=√5)</c>, B zeros,
/// so that a fresh adapter leaves the model's output unchanged.
/// </summary>
public static class LoraInit
{
    /// <summary>The negative slope PEFT passes to <c>kaiming_uniform_</c>, inherited from <c>nn.Linear.reset_parameters</c>.</summary>
    public static readonly double KaimingA = Math.Sqrt(5);

    /// <summary>
    /// torch's <c>kaiming_uniform_(a, mode="fan_in", nonlinearity="leaky_relu")</c> bound:
    /// gain = √(2 / (1 + a²)), std = gain / √fan_in, bound = √3 · std. With a = √5 the gain is √(1/3),
    /// so the bound is exactly 1/√fan_in (fan_in = in_features for A [r, in]).
    /// </summary>
    public static double KaimingUniformBound(long fanIn, double a)
    {
        double gain = Math.Sqrt(2.0 / (1 + a * a));
        return Math.Sqrt(3.0) * gain / Math.Sqrt(fanIn);
    }

    /// <summary>A [r, in] ~ U(−1/√in, 1/√in), fp32, drawn on the CPU from <paramref name="generator"/> so that the
    /// values depend only on the seed, not on the device.</summary>
    public static Tensor LoraA(long rank, long inFeatures, Generator generator)
    {
        double bound = KaimingUniformBound(inFeatures, KaimingA);
        return empty([rank, inFeatures], ScalarType.Float32).uniform_(-bound, bound, generator);
    }

    /// <summary>B [out, r] = 0.</summary>
    public static Tensor LoraB(long outFeatures, long rank) => zeros([outFeatures, rank], ScalarType.Float32);
}
