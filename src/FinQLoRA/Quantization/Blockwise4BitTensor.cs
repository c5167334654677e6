using FinQLoRA.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Quantization;

/// <summary>
/// A bitsandbytes 4-bit weight (NF4 or FP4): the row-major flattened weight cut into blocks of <see cref="BlockSize"/>,
/// one fp32 absmax per block, two 4-bit codes per byte (first element in the high nibble). With double quantization
/// the absmax values are stored as 8-bit codes of the signed dynamic map in blocks of 256, with an fp32 absmax2 per
/// 256-block and one fp32 offset (their mean): 4 + 8/64 + 32/(64·256) = 4.127 bits per parameter.
/// </summary>
public sealed class Blockwise4BitTensor : QuantizedTensor
{
    // Pinned so the kernel can read them through stable pointers from any thread.
    private readonly float[] _code = GC.AllocateArray<float>(16, pinned: true);
    private readonly float[]? _nestedCode;
    private readonly Dictionary<string, Tensor> _deviceTables = new();

    internal Blockwise4BitTensor(long[] shape, ScalarType originalDtype, FourBitType type, int blockSize, Tensor packed,
        Tensor? absmax, ReadOnlySpan<float> code, NestedScales? nested)
        : base(shape, originalDtype)
    {
        long n = ElementCount;
        long blocks = (n + blockSize - 1) / blockSize;
        if (packed.dtype != ScalarType.Byte || packed.numel() != (n + 1) / 2)
            throw new UserInputException($"4-bit weight: packed data is {packed.dtype} with {packed.numel()} elements; expected uint8 with {(n + 1) / 2} for shape [{string.Join(", ", shape)}]");
        if (code.Length != 16)
            throw new UserInputException($"4-bit weight: quant_map has {code.Length} values; expected 16");
        if (nested is null)
        {
            if (absmax is null || absmax.dtype != ScalarType.Float32 || absmax.numel() != blocks)
                throw new UserInputException($"4-bit weight: absmax must be float32 with {blocks} values for {n} elements in blocks of {blockSize} (found {absmax?.dtype.ToString() ?? "nothing"} with {absmax?.numel() ?? 0})");
        }
        else
        {
            long nestedBlocks = (blocks + nested.BlockSize - 1) / nested.BlockSize;
            if (nested.Codes.dtype != ScalarType.Byte || nested.Codes.numel() != blocks)
                throw new UserInputException($"4-bit weight: absmax codes must be uint8 with {blocks} values when double-quantized (found {nested.Codes.dtype} with {nested.Codes.numel()})");
            if (nested.Absmax2.dtype != ScalarType.Float32 || nested.Absmax2.numel() != nestedBlocks)
                throw new UserInputException($"4-bit weight: nested_absmax must be float32 with {nestedBlocks} values (found {nested.Absmax2.dtype} with {nested.Absmax2.numel()})");
            if (nested.Code.Length != 256)
                throw new UserInputException($"4-bit weight: nested_quant_map has {nested.Code.Length} values; expected 256");
            _nestedCode = GC.AllocateArray<float>(256, pinned: true);
            nested.Code.CopyTo(_nestedCode);
        }
        Type = type;
        BlockSize = blockSize;
        Packed = Own(packed.contiguous());
        Absmax = absmax is null ? null : Own(absmax.contiguous());
        code.CopyTo(_code);
        if (nested != null)
        {
            AbsmaxCodes = Own(nested.Codes.contiguous());
            NestedAbsmax = Own(nested.Absmax2.contiguous());
            NestedOffset = nested.Offset;
            NestedBlockSize = nested.BlockSize;
        }
    }

    /// <summary>The 8-bit codes, per-256 absmax2, offset and code table of double-quantized block scales.</summary>
    internal sealed record NestedScales(Tensor Codes, Tensor Absmax2, float Offset, float[] Code, int BlockSize = QuantizationOptions.NestedBlockSize);

    public FourBitType Type { get; }
    public override QuantizedFormat Format => Type == FourBitType.Nf4 ? QuantizedFormat.Nf4 : QuantizedFormat.Fp4;
    public int BlockSize { get; }
    public long BlockCount => (ElementCount + BlockSize - 1) / BlockSize;
    public bool IsDoubleQuantized => _nestedCode != null;

    /// <summary>uint8 [(n+1)/2, 1], bitsandbytes' <c>weight</c> layout.</summary>
    public Tensor Packed { get; }
    /// <summary>fp32 [blocks] when not double-quantized.</summary>
    public Tensor? Absmax { get; }
    /// <summary>uint8 [blocks] codes of (absmax − offset) when double-quantized.</summary>
    public Tensor? AbsmaxCodes { get; }
    /// <summary>fp32 [ceil(blocks/256)] when double-quantized.</summary>
    public Tensor? NestedAbsmax { get; }
    public float NestedOffset { get; }
    public int NestedBlockSize { get; } = QuantizationOptions.NestedBlockSize;

    /// <summary>The 16 code values used to dequantize (bitsandbytes' <c>quant_map</c>).</summary>
    public ReadOnlySpan<float> Code => _code;
    /// <summary>The 256-entry dynamic map of the nested scales (empty when not double-quantized).</summary>
    public ReadOnlySpan<float> NestedCode => _nestedCode;

    public override Device Device => Packed.device;

    public override long StorageBytes =>
        Packed.numel() + _code.Length * 4L
        + (IsDoubleQuantized ? AbsmaxCodes!.numel() + NestedAbsmax!.numel() * 4 + 256 * 4 + 4 : Absmax!.numel() * 4);

    /// <summary>
    /// The weight in <paramref name="dtype"/>. On the CPU, bf16 and fp32 come from the fused SIMD kernel; other devices
    /// and dtypes use <see cref="DequantizeWithTorchOps"/>. Both give identical bits.
    /// </summary>
    public override Tensor Dequantize(ScalarType dtype)
    {
        ThrowIfDisposed();
        if (Packed.device_type == DeviceType.CPU && dtype is ScalarType.BFloat16 or ScalarType.Float32)
            return DequantizeWithKernel(dtype, DequantKernelPath.Auto);
        return DequantizeWithTorchOps(dtype);
    }

    internal Tensor DequantizeWithKernel(ScalarType dtype, DequantKernelPath path)
    {
        var output = empty(Shape, dtype);
        DequantizeInto(output, path);
        return output;
    }

    /// <summary>
    /// Writes the weight into a preallocated contiguous CPU tensor of <see cref="ElementCount"/> bf16 or fp32 elements
    /// (any shape) with the fused SIMD kernel. Reusing one output buffer avoids faulting in fresh pages on every call.
    /// </summary>
    public void DequantizeInto(Tensor output) => DequantizeInto(output, DequantKernelPath.Auto);

    /// <summary>Writes the bf16 dequantized values into an fp32 tensor (each exactly representable): what a matmul that
    /// CPU widening runs in fp32 needs, in one pass instead of dequantizing to bf16 and then copying.</summary>
    public void DequantizeBf16ValuesInto(Tensor output)
    {
        if (output.dtype != ScalarType.Float32) throw new ArgumentException($"output must be fp32, got {output.dtype}", nameof(output));
        DequantizeInto(output, DequantKernelPath.Auto, bf16Values: true);
    }

    internal unsafe void DequantizeInto(Tensor output, DequantKernelPath path, bool bf16Values = false)
    {
        ThrowIfDisposed();
        if (Packed.device_type != DeviceType.CPU || output.device_type != DeviceType.CPU)
            throw new InvalidOperationException("the SIMD dequantization kernel reads and writes CPU memory only; use Dequantize() on other devices");
        if (output.dtype is not (ScalarType.BFloat16 or ScalarType.Float32) || output.numel() != ElementCount || !output.is_contiguous())
            throw new ArgumentException($"output must be a contiguous bf16 or fp32 tensor of {ElementCount} elements (got {output.dtype}, {output.numel()})", nameof(output));
        DequantizeAt(TensorMemory.DataPointer(output), output.dtype, path, bf16Values);
    }

    /// <summary><see cref="DequantizeInto(Tensor, DequantKernelPath, bool)"/> at a raw address: <see cref="ElementCount"/>
    /// contiguous bf16 or fp32 elements of CPU memory that the caller keeps alive (a training matmul node's buffer, filled
    /// without a slice tensor per weight).</summary>
    internal unsafe void DequantizeAt(nint output, ScalarType dtype, DequantKernelPath path, bool bf16Values = false)
    {
        ThrowIfDisposed();
        if (Packed.device_type != DeviceType.CPU)
            throw new InvalidOperationException("the SIMD dequantization kernel reads and writes CPU memory only; use Dequantize() on other devices");
        if (dtype is not (ScalarType.BFloat16 or ScalarType.Float32))
            throw new ArgumentException($"the kernel writes bf16 or fp32, not {dtype}", nameof(dtype));
        long n = ElementCount;
        byte* packed = (byte*)TensorMemory.DataPointer(Packed);
        fixed (float* code = _code)
        fixed (float* nestedCode = _nestedCode)
        {
            BlockScales scales = IsDoubleQuantized
                ? BlockScales.Nested((byte*)TensorMemory.DataPointer(AbsmaxCodes!), (float*)TensorMemory.DataPointer(NestedAbsmax!), nestedCode, NestedOffset, NestedBlockSize)
                : BlockScales.Plain((float*)TensorMemory.DataPointer(Absmax!));
            Dequantize4BitKernel.Run(packed, n, BlockSize, scales, code, (void*)output, dtype == ScalarType.BFloat16, path, bf16Values);
        }
    }

    /// <summary>
    /// Dequantization with generic torch ops on the storage's device (the CUDA path, and the CPU reference):
    /// decode nested scales, look the packed bytes up in a 256×2 pair table (one index per byte instead of shift/mask/stack),
    /// multiply by the block absmax in fp32, then cast.
    /// </summary>
    public Tensor DequantizeWithTorchOps(ScalarType dtype)
    {
        ThrowIfDisposed();
        using var scope = NewDisposeScope();
        long n = ElementCount, blocks = BlockCount;
        Tensor absmax = BlockAbsmax();
        Tensor values = DeviceTable("pairs", PairTable()).index_select(0, Packed.reshape(-1).to(ScalarType.Int64)).reshape(-1);
        long padded = blocks * BlockSize;
        if (values.shape[0] < padded) values = cat([values, zeros(padded - values.shape[0], device: values.device)]);
        else if (values.shape[0] > padded) values = values.narrow(0, 0, padded);
        Tensor scaled = (values.view(blocks, BlockSize) * absmax.unsqueeze(1)).reshape(-1).narrow(0, 0, n);
        return scaled.reshape(Shape).to(dtype).MoveToOuterDisposeScope();
    }

    /// <summary>The fp32 block scales (decoded when double-quantized), on the storage's device.</summary>
    public Tensor BlockAbsmax()
    {
        ThrowIfDisposed();
        if (!IsDoubleQuantized) return Absmax!.alias();
        using var scope = NewDisposeScope();
        long blocks = BlockCount;
        Tensor dyn = DeviceTable("nested", _nestedCode!).index_select(0, AbsmaxCodes!.to(ScalarType.Int64));
        Tensor absmax2 = NestedAbsmax!.repeat_interleave(NestedBlockSize).narrow(0, 0, blocks);
        // two separate fp32 ops, as bitsandbytes (dequantize_blockwise, then += offset)
        return ((dyn * absmax2) + NestedOffset).MoveToOuterDisposeScope();
    }

    private float[] PairTable()
    {
        var pairs = new float[512];
        for (int b = 0; b < 256; b++) { pairs[2 * b] = _code[b >> 4]; pairs[2 * b + 1] = _code[b & 0xF]; }
        return pairs;
    }

    private Tensor DeviceTable(string name, float[] values)
    {
        lock (_deviceTables)
        {
            if (!_deviceTables.TryGetValue(name, out var t))
            {
                Tensor raw = tensor(values, device: Device);
                t = Own(name == "pairs" ? raw.view(256, 2) : raw.alias());
                _deviceTables[name] = t;
            }
            return t;
        }
    }

    public override QuantizedTensor To(Device device)
    {
        ThrowIfDisposed();
        using var scope = NewDisposeScope();
        NestedScales? nested = IsDoubleQuantized
            ? new NestedScales(AbsmaxCodes!.to(device), NestedAbsmax!.to(device), NestedOffset, _nestedCode!, NestedBlockSize)
            : null;
        return new Blockwise4BitTensor(Shape, OriginalDtype, Type, BlockSize, Packed.to(device), Absmax?.to(device), _code, nested);
    }

    protected override void DisposeStorage()
    {
        Packed.Dispose();
        Absmax?.Dispose();
        AbsmaxCodes?.Dispose();
        NestedAbsmax?.Dispose();
        lock (_deviceTables)
        {
            foreach (var t in _deviceTables.Values) t.Dispose();
            _deviceTables.Clear();
        }
    }
}
