using System.Numerics;
using System.Runtime.CompilerServices;

namespace FinQLoRA.Quantization;

/// <summary>
/// Where a dequantization kernel reads the scale of a 4-bit block: a plain fp32 absmax array, or double-quantized
/// scales decoded on the fly (<c>dyn[q_b] · absmax2[b / 256] + offset</c>, one scalar per block — cheaper than a
/// separate decode pass that writes and re-reads an fp32 array).
/// </summary>
internal readonly unsafe struct BlockScales
{
    private readonly float* _absmax;
    private readonly byte* _codes;
    private readonly float* _absmax2;
    private readonly float* _dynamicCode;
    private readonly float _offset;
    private readonly int _nestedBlockSize;
    private readonly int _nestedShift; // log2 of the nested block size when it is a power of two (256 always is): no division per block

    private BlockScales(float* absmax, byte* codes, float* absmax2, float* dynamicCode, float offset, int nestedBlockSize)
    {
        _absmax = absmax; _codes = codes; _absmax2 = absmax2; _dynamicCode = dynamicCode; _offset = offset;
        _nestedBlockSize = nestedBlockSize;
        _nestedShift = BitOperations.IsPow2(nestedBlockSize) ? BitOperations.Log2((uint)nestedBlockSize) : -1;
    }

    public static BlockScales Plain(float* absmax) => new(absmax, null, null, null, 0f, 1);

    public static BlockScales Nested(byte* codes, float* absmax2, float* dynamicCode, float offset, int nestedBlockSize) =>
        new(null, codes, absmax2, dynamicCode, offset, nestedBlockSize);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float Get(long block)
    {
        if (_absmax != null) return _absmax[block];
        // Two roundings, like bitsandbytes' dequantize_blockwise followed by `absmax += offset` (.NET never contracts to FMA).
        long nested = _nestedShift >= 0 ? block >> _nestedShift : block / _nestedBlockSize;
        float scaled = _dynamicCode[_codes[block]] * _absmax2[nested];
        return scaled + _offset;
    }
}
