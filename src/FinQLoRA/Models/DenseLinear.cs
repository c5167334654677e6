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

    /// <summary>Only into a widened (fp32) buffer, which the matmul would copy the weight into anyway: elsewhere a copy
    /// costs a pass over the weight that separate matmuls do not make, and a fused matmul reads weights that share one
    /// tensor in place (<see cref="RowBlocksOfOneTensor"/>).</summary>
    public bool CanWriteWeight(ScalarType dtype) => weight.device_type == DeviceType.CPU && dtype is ScalarType.BFloat16 or ScalarType.Float16;

    public void WriteWeight(Tensor destination, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        destination.copy_(weight.dtype == dtype ? weight : weight.to(dtype)); // rounded to the input's dtype, as x·Wᵀ uses it
    }

    /// <summary>The weights of <paramref name="group"/> as one [ΣOut, In] view, where they are consecutive row blocks of
    /// one tensor (as the loader stores q, k, v and gate, up: <see cref="FinQLoRA.Loading.ModelLoader"/>), else null: after a
    /// <c>.to()</c>, a merge that replaced a weight, or a hand-built layer, each weight has its own storage.</summary>
    internal static Tensor? RowBlocksOfOneTensor(IReadOnlyList<DenseLinear> group)
    {
        var first = group[0].weight;
        if (!first.is_contiguous()) return null;
        long elementSize = first.element_size(), rows = first.shape[0];
        // A view's element pointer minus its storage offset is its storage's start: equal starts mean one storage.
        long at0 = (long)TensorMemory.DataPointer(first);
        long start = at0 - first.storage_offset() * elementSize;
        long next = at0 + first.numel() * elementSize;
        for (int i = 1; i < group.Count; i++)
        {
            var w = group[i].weight;
            if (w.dtype != first.dtype || w.shape[1] != first.shape[1] || w.device_type != first.device_type || w.device_index != first.device_index || !w.is_contiguous())
                return null;
            long at = (long)TensorMemory.DataPointer(w);
            if (at != next || at - w.storage_offset() * elementSize != start) return null;
            next = at + w.numel() * elementSize;
            rows += w.shape[0];
        }
        return first.as_strided([rows, first.shape[1]], [first.shape[1], 1], first.storage_offset());
    }

    /// <summary>Whether a 16-bit matmul with gradients takes the fused step's node on rows (<see cref="DenseMatmulFunction"/>)
    /// instead of autograd's linear: same products, half the dispatcher ops.</summary>
    internal static bool RowsNode(Tensor x, Tensor weight) =>
        TrainingFusions.Enabled && x.requires_grad && is_grad_enabled() && weight.dtype == x.dtype && !weight.requires_grad;

    /// <summary>x·Wᵀ for a frozen W: the plain 16/32-bit linear, or where the CPU widens 16-bit matmuls
    /// (<see cref="CpuMatmulPrecision"/>) an fp32 one whose backward also runs in fp32.</summary>
    internal static Tensor Multiply(Tensor x, Tensor weight)
    {
        if (Quantization.Gemv.DenseGemv.Applies(x, weight)) return Quantization.Gemv.DenseGemv.Multiply(x, weight); // decode rows: one pass at the weight's read rate
        if (CpuMatmulPrecision.MatmulDType(x) == x.dtype)
            return RowsNode(x, weight) ? DenseMatmulFunction.Apply(x, weight)
                : nn.functional.linear(x, weight.dtype == x.dtype ? weight : weight.to(x.dtype));
        return x.requires_grad && is_grad_enabled() ? DenseMatmulFunction.Apply(x, weight) : DenseMatmulFunction.Forward(x, weight);
    }
}
