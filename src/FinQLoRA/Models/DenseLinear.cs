using FinQLoRA.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>A frozen 16/32-bit linear projection <c>y = x·Wᵀ</c> (Llama has no biases). Frozen because in
/// (Q)LoRA only adapters train; the weight is a parameter so that <c>.to(device)</c> and counting see it.</summary>
public sealed class DenseLinear : nn.Module<Tensor, Tensor>, IFrozenLinear
{
    private readonly Parameter weight;

    public DenseLinear(Tensor weight) : base(nameof(DenseLinear))
    {
        this.weight = new Parameter(weight, requires_grad: false);
        RegisterComponents();
    }

    /// <summary>The stored weight [out, in] (frozen).</summary>
    internal Tensor Weight => weight;
    public long InFeatures => weight.shape[1];
    public long OutFeatures => weight.shape[0];
    public long StorageBytes => weight.numel() * weight.element_size();

    /// <summary>The weight in the given dtype (a view when no cast is needed).</summary>
    public Tensor DequantizedWeight(ScalarType dtype) => weight.dtype == dtype ? weight.alias() : weight.to(dtype);

    public override Tensor forward(Tensor x) => Multiply(x, weight);

    public bool CanWriteWidenedWeight(ScalarType dtype) => weight.device_type == DeviceType.CPU && dtype is ScalarType.BFloat16 or ScalarType.Float16;

    public void WriteWidenedWeight(Tensor destination, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        destination.copy_(weight.dtype == dtype ? weight : weight.to(dtype)); // rounded to the input's dtype, as x·Wᵀ uses it
    }

    /// <summary>x·Wᵀ for a frozen W: the plain 16/32-bit linear, or where the CPU widens 16-bit matmuls
    /// (<see cref="CpuMatmulPrecision"/>) an fp32 one whose backward also runs in fp32.</summary>
    internal static Tensor Multiply(Tensor x, Tensor weight)
    {
        if (CpuMatmulPrecision.MatmulDType(x) == x.dtype)
            return nn.functional.linear(x, weight.dtype == x.dtype ? weight : weight.to(x.dtype));
        return x.requires_grad && is_grad_enabled() ? DenseMatmulFunction.Apply(x, weight) : DenseMatmulFunction.Forward(x, weight);
    }
}
