using FinQLoRA.Quantization.Gemv;

namespace FinQLoRA.Inference.Decoding;

/// <summary>
/// What the products of one input vector share, per thread of the managed step, made once per input as the libtorch
/// step's fused gemv makes them per call (<see cref="FusedGemv"/>): each active adapter's <c>u = s·A·x</c>
/// (<see cref="LowRankTerm.LowRankInputs"/>), and the input's LLM.int8 quantization (<see cref="Int8RowQuantizer"/>:
/// row codes, the scale, the outlier columns). q, k and v read one input, split by KV group, so each is asked for many
/// times per input; <see cref="Next"/> says a new input vector is ready. The arrays are pinned: the step reads them
/// by pointer from every phase.
/// </summary>
internal sealed unsafe class StepInputs
{
    private readonly float* _u;          // [kinds, rank]: u of each projection kind's adapter
    private readonly int[] _uAt;         // the input generation each kind's u was made for
    private readonly short* _codes;      // the int8 codes of the input [widest input]
    private readonly long* _columns;     // its outlier columns
    private readonly float* _scale;      // its scale (max |x| without outliers)
    private int _outliers;
    private int _int8At = -1;
    private double _threshold;
    private int _generation;
    private readonly List<Array> _pinned = [];

    /// <param name="widestInput">the most input features of any product</param>
    /// <param name="kinds">projection kinds per layer (one u each)</param>
    /// <param name="rank">the largest adapter rank these inputs hold u for</param>
    public StepInputs(int widestInput, int kinds, int rank)
    {
        Rank = rank;
        _u = (float*)Pin<float>(kinds * Math.Max(1, rank));
        _uAt = new int[kinds];
        Array.Fill(_uAt, -1);
        _codes = (short*)Pin<short>(widestInput);
        _columns = (long*)Pin<long>(widestInput);
        _scale = (float*)Pin<float>(1);
    }

    /// <summary>The largest rank these inputs hold u for.</summary>
    public int Rank { get; }

    /// <summary>A new input vector is ready: what was made for the last one is stale.</summary>
    public void Next() => _generation++;

    /// <summary>u = s·A·x of the adapter of projection kind <paramref name="kind"/> for input x (natural layout), made
    /// on the first call for this input.</summary>
    public float* LowRank(int kind, LowRankTerm term, float* a, float* x, int inFeatures)
    {
        float* u = _u + kind * Rank;
        if (_uAt[kind] != _generation)
        {
            term.LowRankInputs(x, 1, inFeatures, a, u);
            _uAt[kind] = _generation;
        }
        return u;
    }

    /// <summary>Input x quantized for an int8 product with outlier <paramref name="threshold"/>, made on the first call
    /// for this input and threshold.</summary>
    public Int8GemvKernel.Activations Int8(float* x, int inFeatures, double threshold)
    {
        if (_int8At != _generation || _threshold != threshold)
        {
            _outliers = Int8RowQuantizer.Quantize(x, 1, inFeatures, threshold, _codes, _scale, _columns);
            _int8At = _generation;
            _threshold = threshold;
        }
        return new Int8GemvKernel.Activations(_codes, _scale, x, _outliers > 0 ? _columns : null, _outliers);
    }

    private void* Pin<T>(int length) where T : unmanaged
    {
        var array = GC.AllocateArray<T>(Math.Max(1, length), pinned: true);
        _pinned.Add(array);
        fixed (T* p = array) return p; // pinned for its lifetime: the address stays valid after the fixed block
    }
}
