using FinQLoRA.Models;
using FinQLoRA.Quantization.Gemv;
using FinQLoRA.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Quantization;

/// <summary>
/// A frozen linear layer over a quantized weight (bitsandbytes <c>Linear4bit</c> / <c>Linear8bitLt</c> with frozen
/// weights): <c>y = x·dequant(W)ᵀ + b</c> in the input's dtype. It registers no parameters, so optimizers and
/// "trainable parameters" never see it; gradients flow to the input only. The dequantized weight is a temporary
/// freed right after the matmul, and backward re-dequantizes (see <see cref="QuantizedMatmulFunction"/>).
/// 8-bit layers use the LLM.int8() outlier decomposition when <see cref="Int8Threshold"/> &gt; 0.
/// </summary>
public sealed class QuantizedLinear : nn.Module<Tensor, Tensor>, IFrozenLinear, IQuantizedParameterCount
{
    private QuantizedTensor _weight;

    /// <param name="weight">[out, in]; the layer takes ownership and disposes it.</param>
    /// <param name="bias">optional [out]; kept as a frozen buffer (not a parameter).</param>
    public QuantizedLinear(QuantizedTensor weight, Tensor? bias = null, double int8Threshold = 6.0, string name = "QuantizedLinear")
        : base(name)
    {
        if (weight.Shape.Length != 2)
            throw new ArgumentException($"a linear weight must be 2-D [out, in], got [{string.Join(", ", weight.Shape)}]", nameof(weight));
        if (bias is not null && (bias.dim() != 1 || bias.shape[0] != weight.Shape[0]))
            throw new ArgumentException($"bias shape [{string.Join(", ", bias.shape)}] does not match {weight.Shape[0]} output features", nameof(bias));
        _weight = weight;
        Int8Threshold = int8Threshold;
        // A buffer (not a field) so Module.to() moves it and state_dict() lists it; never trainable.
        if (bias is not null) register_buffer("bias", bias.detach().DetachFromDisposeScope());
    }

    public QuantizedTensor Weight => _weight;
    public Tensor? Bias => get_buffer("bias");
    public long InFeatures => _weight.Shape[1];
    public long OutFeatures => _weight.Shape[0];
    public double Int8Threshold { get; }

    /// <summary>Packed weight and its quantization constants (the bias buffer is counted by the module's buffers).</summary>
    public long StorageBytes => _weight.StorageBytes;

    /// <summary>The weight elements the packed storage stands for (parameters() does not list them).</summary>
    public long LogicalParameterCount => _weight.ElementCount;

    /// <summary>A newly dequantized [out, in] weight; the caller disposes it.</summary>
    public Tensor DequantizedWeight(ScalarType dtype) => _weight.Dequantize(dtype);

    /// <summary>4-bit weights dequantize into the buffer (their bf16 values straight into fp32 for a widened matmul);
    /// 8-bit forwards run LLM.int8 instead.</summary>
    public bool CanWriteWeight(ScalarType dtype) =>
        _weight is Blockwise4BitTensor && _weight.Device.type == DeviceType.CPU && dtype is ScalarType.BFloat16 or ScalarType.Float32 && Bias is null;

    /// <summary>At decode sizes (<see cref="FusedGemv.Applies"/>) the fused gemv reads the packed weight once; writing it
    /// into a group's buffer first would undo that.</summary>
    public bool MultipliesAlone(Tensor x) => FusedGemv.Applies(x, _weight);

    public void WriteWeight(Tensor destination, ScalarType dtype)
    {
        if (!CanWriteWeight(dtype)) throw new InvalidOperationException($"{this} cannot write its weight for {dtype} inputs");
        var q = (Blockwise4BitTensor)_weight;
        if (destination.dtype == dtype) q.DequantizeInto(destination);
        else if (dtype == ScalarType.BFloat16 && destination.dtype == ScalarType.Float32) q.DequantizeBf16ValuesInto(destination);
        else throw new ArgumentException($"a weight for {dtype} inputs is written in {dtype} or fp32, not {destination.dtype}", nameof(destination));
    }

    public bool TryWriteWeightAt(nint destination, ScalarType destinationDtype, ScalarType dtype)
    {
        if (!CanWriteWeight(dtype)) return false;
        var q = (Blockwise4BitTensor)_weight;
        if (destinationDtype == dtype) q.DequantizeAt(destination, dtype, DequantKernelPath.Auto);
        else if (dtype == ScalarType.BFloat16 && destinationDtype == ScalarType.Float32) q.DequantizeAt(destination, destinationDtype, DequantKernelPath.Auto, bf16Values: true);
        else return false;
        return true;
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        // Training (issue 26): the lean matmul node of fused groups, a group of one (2-D work, the weight dequantized
        // into the workspace by pointer), where the step of before had its own node's casts and reshapes.
        if (input.requires_grad && is_grad_enabled() && TrainingFusions.Enabled && CanWriteWeight(input.dtype))
            return FusedMatmulFunction.Apply(input, [this]).MoveToOuterDisposeScope();
        Tensor y = input.requires_grad && is_grad_enabled() ? QuantizedMatmulFunction.Apply(input, _weight, Int8Threshold)
            : FusedGemv.Applies(input, _weight) ? FusedGemv.Multiply(input, _weight, Int8Threshold)
            : QuantizedMatmulFunction.Forward(input, _weight, Int8Threshold);
        if (Bias is Tensor bias) y = y + bias.to(y.dtype);
        return y.MoveToOuterDisposeScope();
    }

    // Module.to(device) moves parameters and buffers; the quantized storage is neither, so move it here.
    protected override nn.Module _to(Device device, ScalarType dtype, bool non_blocking)
    {
        MoveWeight(device);
        return base._to(device, dtype, non_blocking);
    }

    protected override nn.Module _to(DeviceType deviceType, int deviceIndex, bool non_blocking)
    {
        MoveWeight(new Device(deviceType, deviceIndex));
        return base._to(deviceType, deviceIndex, non_blocking);
    }

    private void MoveWeight(Device device)
    {
        if (_weight.Device.type == device.type && _weight.Device.index == device.index) return;
        QuantizedTensor moved = _weight.To(device);
        _weight.Dispose();
        _weight = moved;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _weight.Dispose();
        base.Dispose(disposing);
    }

    public override string ToString() => $"QuantizedLinear({InFeatures} → {OutFeatures}, {_weight.Format}, bias={Bias is not null})";
}
