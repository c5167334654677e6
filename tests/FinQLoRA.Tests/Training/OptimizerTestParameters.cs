using TorchSharp;
using TorchSharp.Modules;

namespace FinQLoRA.Tests.Training;

/// <summary>Small fp32 parameters with hand-set gradients for optimizer tests.</summary>
internal static class OptimizerTestParameters
{
    public static Parameter Create(params float[] values) =>
        new(torch.tensor(values, torch.ScalarType.Float32).DetachFromDisposeScope(), requires_grad: true);

    public static Parameter Create(long[] shape, int seed)
    {
        var generator = new torch.Generator((ulong)seed);
        return new Parameter(torch.randn(shape, torch.ScalarType.Float32, generator: generator).DetachFromDisposeScope(), requires_grad: true);
    }

    /// <summary>A fresh parameter holding a bit-identical copy of <paramref name="source"/>'s values.</summary>
    public static Parameter CloneOf(Parameter source) =>
        new(source.detach().clone().DetachFromDisposeScope(), requires_grad: true);

    public static void SetGrad(Parameter parameter, torch.Tensor grad)
    {
        using var noGrad = torch.no_grad();
        parameter.grad = grad.to(torch.ScalarType.Float32).reshape(parameter.shape).clone().DetachFromDisposeScope();
    }

    public static void SetGrad(Parameter parameter, params double[] values) =>
        SetGrad(parameter, torch.tensor(values.Select(v => (float)v).ToArray(), torch.ScalarType.Float32));

    public static float[] Values(torch.Tensor tensor) => tensor.detach().reshape(-1).data<float>().ToArray();

    /// <summary>Bit patterns, so that equality means bit-identical (NaN payloads and −0 included).</summary>
    public static int[] Bits(torch.Tensor tensor) => Values(tensor).Select(BitConverter.SingleToInt32Bits).ToArray();
}
