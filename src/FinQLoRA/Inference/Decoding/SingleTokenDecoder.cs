using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using FinQLoRA.Adapters;
using FinQLoRA.Models;
using FinQLoRA.Quantization;
using FinQLoRA.Quantization.Gemv;
using FinQLoRA.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Inference.Decoding;

/// <summary>
/// One decode step of one sequence (batch 1, one token) of an fp32 or bf16 model on the CPU, in managed SIMD code
/// over the model's own weight and KV-cache memory. At batch 1 a step is ~50 libtorch calls per layer on vectors of a
/// few hundred floats, and each call (dispatch, a dispose scope, a fresh output tensor) costs more than its arithmetic:
/// stories260K spent ~3 ms per token where llama.cpp, which runs the same loop as plain C, spends ~0.5. This is that
/// loop: RMSNorm, matrix-vector products (dense, or 4-bit and 8-bit through the fused gemv kernels, so a quantized model
/// decodes without a dequantized copy; an active LoRA adapter's term added as the libtorch step adds it), rotate-half RoPE with the model's frequencies, the KV cache written in place,
/// grouped-query attention over the cache, SwiGLU, and the head. In large layers the torch threads share the work, each
/// KV group's projections and attention on one thread and the other products by rows. The math is
/// <see cref="DecoderModel.Forward(Tensor, Tensor?, KvCache?, bool)"/>'s in fp32 with other summation orders, so logits
/// agree to fp32 rounding and greedy ids are the same (the llama.cpp cross-checks run through it). With bf16 activations
/// the vectors hold bf16 values in fp32 and every op rounds where the libtorch bf16 step rounds (<see cref="Bf16StepMath"/>;
/// dense bf16 weights through <see cref="Bf16GemvKernel"/>, 4-bit ones with bf16-rounded tables and outputs, the KV cache
/// in bf16), so hidden states, keys, values and logits equal the libtorch step's or sit one bf16 ulp away.
/// What it implements is stated in <see cref="ManagedStepSupport"/>; <see cref="DecodeStep.Choose"/> picks it.
/// </summary>
internal sealed unsafe partial class SingleTokenDecoder
{
    /// <summary>A weight: the module (to see it is still in place; none for tied embeddings) and its data, read once
    /// (weights do not move). Dense in the compute dtype (<see cref="Bf16"/>: bf16, multiplied by
    /// <see cref="Bf16GemvKernel"/> where it reads the shape, else by <see cref="Bf16StepMath.Rows"/>), or a 4-bit one
    /// (<see cref="FourBit"/>: NF4/FP4, plain or double-quantized scales), which the fused gemv kernel multiplies without
    /// dequantizing (<see cref="FourBitGemvKernel"/>), or an 8-bit one (<see cref="Int8"/>: LLM.int8 with its outlier
    /// threshold, <see cref="Int8GemvKernel"/>). The vector kernels read the input deinterleaved (<see cref="Path"/>
    /// not scalar). <see cref="Slot"/> indexes the projection's adapter term (layer · 7 + kind; −1: the head).</summary>
    private readonly record struct Matrix(nn.Module? Module, nint Data, int Rows, int Cols, FourBitGemvKernel.Weight? FourBit = null,
        DequantKernelPath Path = DequantKernelPath.Scalar, bool Bf16 = false, Int8GemvKernel.Weight? Int8 = null, double Int8Threshold = 0,
        int Slot = -1)
    {
        public static Matrix Dense(nn.Module? module, Tensor weight)
        {
            int cols = (int)weight.shape[1];
            bool bf16 = weight.dtype == ScalarType.BFloat16;
            var path = bf16 && Bf16GemvKernel.Supports(cols) ? DequantKernelPath.Avx512 : DequantKernelPath.Scalar;
            return new(module, TensorMemory.DataPointer(weight), (int)weight.shape[0], cols, null, path, bf16);
        }
    }

    private sealed record Layer(nint InputNorm, double InputEps, nint PostNorm, double PostEps, Matrix Q, Matrix K, Matrix V, Matrix O,
        Matrix Gate, Matrix Up, Matrix Down);

    private readonly DecoderModel _model;
    private readonly ModelConfig _c;
    private readonly Layer[] _layers;
    private readonly float[] _invFreq;
    // Scratch vectors, reused every step (one decoder per model, used by one thread at a time). Shared: q, k, v, attn,
    // o, gate, up (each thread writes its own rows or heads), RoPE's cos and sin (written before the threads start). Per
    // thread: the residual stream, its norm and the attention scores, which each thread computes or uses in full.
    private readonly float[] _q, _k, _v, _attn, _o, _gate, _up;
    private readonly float[] _cos, _sin;
    private float[][] _x = [], _n = [], _scores = [];
    private readonly long _layerWeights;
    private readonly nint _embed, _finalNorm;
    // 4-bit weights' code tables (16 values, and 256 for double-quantized scales) and a bf16 model's norm weights widened
    // to fp32, pinned so the loop reads them by pointer; held here so they live as long as the decoder
    private readonly List<float[]> _pinned;
    // per thread: the inputs of the vector kernels' products (the norm, the attention output, SwiGLU's output) in their
    // deinterleaved layout; empty when no kernel reads it
    private float[][] _nIn = [], _attnIn = [], _gateIn = [];
    private readonly bool _deinterleaves;
    // bf16 activations (the model's compute dtype): vectors hold bf16 values, the cache and dense weights are bf16
    private readonly bool _bf16;
    // per thread, bf16 models with 4-bit weights: the kernel's bf16 outputs of this thread's rows, widened into the vectors
    private ushort[][] _staging = [];
    private readonly int _widestOutput;
    private StepThreadChoice? _threadChoice;

    /// <summary>Layers of at least this many weights split their work over the torch threads (stories260K's have
    /// ~50K and run on one; the 76M benchmark model's 6.3M run on all).</summary>
    private const long ThreadsFromWeights = 1 << 20;

    private SingleTokenDecoder(DecoderModel model, Layer[] layers, nint finalNorm, List<float[]> pinned)
    {
        _model = model;
        _pinned = pinned;
        _finalNorm = finalNorm;
        _bf16 = model.ComputeDType == ScalarType.BFloat16;
        _deinterleaves = HeadMatrix().Path != DequantKernelPath.Scalar
            || layers.Any(l => new[] { l.Q, l.K, l.V, l.O, l.Gate, l.Up, l.Down }.Any(m => m.Path != DequantKernelPath.Scalar));
        _c = model.Config;
        // a bf16 model's kernels (4-bit, 8-bit, and any product with an adapter term) write bf16 outputs there
        _widestOutput = _bf16 ? new[] { _c.NumHeads * _c.HeadDim, _c.HiddenSize, _c.IntermediateSize }.Max() : 0;
        _layers = layers;
        _invFreq = RotaryEmbedding.InverseFrequencies(_c);
        int h = _c.HiddenSize, qd = _c.NumHeads * _c.HeadDim, kvd = _c.NumKvHeads * _c.HeadDim;
        _o = new float[h];
        _q = new float[qd]; _attn = new float[qd]; _k = new float[kvd]; _v = new float[kvd];
        _gate = new float[_c.IntermediateSize]; _up = new float[_c.IntermediateSize];
        _cos = new float[_c.HeadDim / 2]; _sin = new float[_c.HeadDim / 2];
        _embed = TensorMemory.DataPointer(model.EmbedTokens);
        _layerWeights = layers.Length == 0 ? 0
            : new[] { layers[0].Q, layers[0].K, layers[0].V, layers[0].O, layers[0].Gate, layers[0].Up, layers[0].Down }.Sum(m => (long)m.Rows * m.Cols);
        _wrapped = [.. layers.SelectMany(l => new[] { l.Q, l.K, l.V, l.O, l.Gate, l.Up, l.Down })
            .Where(m => m.Module is LoraLinear).Select(m => (m.Slot, (LoraLinear)m.Module!))];
        _terms = new AdapterTerm[layers.Length * Kinds];
        _bOffsetArray = GC.AllocateArray<long>(Math.Max(1, layers.Length * Kinds), pinned: true);
        _bOffsets = (long*)Unsafe.AsPointer(ref _bOffsetArray[0]);
    }

    /// <summary>A decoder for the model as its modules are now, or null when it does not apply: an architecture or
    /// compute dtype/device outside <see cref="ManagedStepSupport"/>, or a projection that is neither a dense weight of
    /// the compute dtype nor an unbiased 4-bit or 8-bit one, or whose adapter state the step does not compute
    /// (<see cref="ManagedStepSupport.RejectsWeight"/>).</summary>
    public static SingleTokenDecoder? TryCreate(DecoderModel model)
    {
        if (ManagedStepSupport.Rejects(model) is not null) return null;
        var dtype = model.ComputeDType;
        if (!Is(model.EmbedTokens, dtype)) return null;
        if (model.LmHead is not null && !(model.LmHead is DenseLinear head && Is(head.Weight, dtype))) return null;
        var layers = new Layer[model.Layers.Count];
        var pinned = new List<float[]>();
        // RMSNorm computes in fp32 whatever its weight's dtype: fp32 weights are read in place, a bf16 model's bf16 ones
        // from widened (exact) copies
        nint? Norm(RmsNorm norm) =>
            Is(norm.Weight, ScalarType.Float32) ? TensorMemory.DataPointer(norm.Weight)
            : dtype == ScalarType.BFloat16 && Is(norm.Weight, ScalarType.BFloat16) ? Widened(norm.Weight, pinned)
            : null;
        for (int i = 0; i < layers.Length; i++)
        {
            var l = model.Layers[i];
            // the module itself is kept (an inactive adapter wrapper included) so that a swap or an activation is seen
            int layer = i;
            Matrix? M(ProjectionKind kind) => ManagedStepSupport.RejectsWeight(l[kind], dtype) is not null ? null
                : ((l[kind] is LoraLinear lora ? lora.BaseLayer : l[kind]) switch
                {
                    DenseLinear d => Matrix.Dense(l[kind], d.Weight),
                    QuantizedLinear { Weight: Blockwise4BitTensor q } => FourBitMatrix(l[kind], q, pinned),
                    QuantizedLinear { Weight: Int8RowwiseTensor q } linear => Int8Matrix(l[kind], q, linear.Int8Threshold),
                    _ => (Matrix?)null,
                }) is { } m ? m with { Slot = layer * Kinds + (int)kind } : null;
            if (M(ProjectionKind.Q) is not { } q || M(ProjectionKind.K) is not { } k || M(ProjectionKind.V) is not { } v || M(ProjectionKind.O) is not { } o
                || M(ProjectionKind.Gate) is not { } gate || M(ProjectionKind.Up) is not { } up || M(ProjectionKind.Down) is not { } down
                || Norm(l.InputNorm) is not { } inputNorm || Norm(l.MlpInputNorm) is not { } postNorm)
                return null;
            layers[i] = new Layer(inputNorm, l.InputNorm.Eps, postNorm, l.MlpInputNorm.Eps, q, k, v, o, gate, up, down);
        }
        return Norm(model.FinalNorm) is { } finalNorm ? new SingleTokenDecoder(model, layers, finalNorm, pinned) : null;
    }

    private static float* Pin(ReadOnlySpan<float> values, List<float[]> pinned)
    {
        float[] array = GC.AllocateArray<float>(values.Length, pinned: true);
        values.CopyTo(array);
        pinned.Add(array);
        return (float*)Unsafe.AsPointer(ref array[0]);
    }

    private static nint Widened(Tensor weight, List<float[]> pinned)
    {
        using var scope = NewDisposeScope();
        return (nint)Pin(weight.detach().to(ScalarType.Float32).contiguous().data<float>().ToArray(), pinned);
    }

    private static Matrix FourBitMatrix(nn.Module module, Blockwise4BitTensor q, List<float[]> pinned)
    {
        float* Pin(ReadOnlySpan<float> values) => SingleTokenDecoder.Pin(values, pinned);
        BlockScales scales = q.IsDoubleQuantized
            ? BlockScales.Nested((byte*)TensorMemory.DataPointer(q.AbsmaxCodes!), (float*)TensorMemory.DataPointer(q.NestedAbsmax!), Pin(q.NestedCode), q.NestedOffset, q.NestedBlockSize)
            : BlockScales.Plain((float*)TensorMemory.DataPointer(q.Absmax!));
        int inF = (int)q.Shape[1];
        nint packed = TensorMemory.DataPointer(q.Packed);
        var weight = new FourBitGemvKernel.Weight((byte*)packed, inF, q.Shape[0], q.BlockSize, scales, Pin(q.Code));
        return new Matrix(module, packed, (int)q.Shape[0], inF, weight, FourBitGemvKernel.Resolve(DequantKernelPath.Auto, inF, q.BlockSize));
    }

    private static Matrix Int8Matrix(nn.Module module, Int8RowwiseTensor q, double threshold)
    {
        nint codes = TensorMemory.DataPointer(q.CB);
        var weight = new Int8GemvKernel.Weight((sbyte*)codes, (float*)TensorMemory.DataPointer(q.SCB), (int)q.Shape[1], q.Shape[0]);
        return new Matrix(module, codes, (int)q.Shape[0], (int)q.Shape[1], Int8: weight, Int8Threshold: threshold);
    }

    /// <summary>Whether the model's modules and weight memory are still the ones this decoder read (adapters injected,
    /// weights replaced, or the model moved since make it stale), and every adapter wrapper's state is one the step
    /// computes (<see cref="ManagedStepSupport.RejectsAdapter"/>; read here for the next step).</summary>
    public bool IsCurrent()
    {
        // A model moved or cast since (Module.to) has new weight memory: one weight and the embeddings stand for all.
        if (_layers.Length > 0 && !StillAt(_layers[0].Q)) return false;
        if (!Is(_model.EmbedTokens, _model.ComputeDType) || TensorMemory.DataPointer(_model.EmbedTokens) != _embed) return false;
        for (int i = 0; i < _layers.Length; i++)
        {
            var l = _model.Layers[i];
            var d = _layers[i];
            if (!ReferenceEquals(l[ProjectionKind.Q], d.Q.Module) || !ReferenceEquals(l[ProjectionKind.K], d.K.Module) || !ReferenceEquals(l[ProjectionKind.V], d.V.Module)
                || !ReferenceEquals(l[ProjectionKind.O], d.O.Module) || !ReferenceEquals(l[ProjectionKind.Gate], d.Gate.Module)
                || !ReferenceEquals(l[ProjectionKind.Up], d.Up.Module) || !ReferenceEquals(l[ProjectionKind.Down], d.Down.Module))
                return false;
        }
        return ReadAdapters();
    }

    /// <summary>Feeds token <paramref name="id"/> at the cache's next position, writes its keys and values there, advances
    /// the cache, and returns fp32 logits [1, 1, vocab].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimized from the first token, not after tiering
    public Tensor Step(long id, KvCache cache)
    {
        // Small layers run on this thread alone: handing work to another thread costs more than their arithmetic. Large
        // ones run on the torch threads while that is measured to be faster (a busy machine makes it slower).
        if (_layerWeights < ThreadsFromWeights) return Step(id, cache, 1);
        _threadChoice ??= new StepThreadChoice(Math.Max(1, get_num_threads()));
        int threads = _threadChoice.Threads;
        long start = Stopwatch.GetTimestamp();
        var logits = Step(id, cache, threads);
        _threadChoice.Record(threads, Stopwatch.GetTimestamp() - start);
        return logits;
    }

    /// <summary><see cref="Step(long, KvCache)"/> on <paramref name="threads"/> threads (tests compare thread counts;
    /// the count never changes the result, because every row and head is computed the same way by whichever thread).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal Tensor Step(long id, KvCache cache, int threads)
    {
        int pos = cache.Length;
        if (pos + 1 > cache.Capacity)
            throw UserInputException.About($"the sequence needs {pos + 1} positions but the KV cache holds {cache.Capacity}; lower {new ConfigField("max_new_tokens")} or shorten the prompt");
        if (pos + 1 > _c.MaxPositionEmbeddings) throw new InvalidOperationException($"position {pos} is past max_position_embeddings {_c.MaxPositionEmbeddings}");
        if (!ReadAdapters())
            throw new InvalidOperationException("an adapter state outside the managed step's set (ManagedDecodeStep checks IsCurrent before each step)");
        int h = _c.HiddenSize;
        if (_x.Length != threads || _inputs[0].Rank < _rank)
        {
            _x = [.. Enumerable.Range(0, threads).Select(_ => new float[h])];
            _n = [.. Enumerable.Range(0, threads).Select(_ => new float[h])];
            _scores = [.. Enumerable.Range(0, threads).Select(_ => new float[_c.NumHeads / _c.NumKvHeads * _c.MaxPositionEmbeddings])];
            int laidOut = _deinterleaves ? 1 : 0;
            _nIn = [.. Enumerable.Range(0, threads).Select(_ => new float[h * laidOut])];
            _attnIn = [.. Enumerable.Range(0, threads).Select(_ => new float[_c.NumHeads * _c.HeadDim * laidOut])];
            _gateIn = [.. Enumerable.Range(0, threads).Select(_ => new float[_c.IntermediateSize * laidOut])];
            _staging = [.. Enumerable.Range(0, threads).Select(_ => new ushort[_widestOutput])];
            int widestInput = new[] { h, _c.NumHeads * _c.HeadDim, _c.IntermediateSize }.Max();
            _inputs = [.. Enumerable.Range(0, threads).Select(_ => new StepInputs(widestInput, Kinds, _rank))];
        }
        var keys = new nint[_layers.Length];
        var values = new nint[_layers.Length];
        for (int i = 0; i < _layers.Length; i++)
        {
            var (k, v) = cache.LayerStorage(i);
            keys[i] = TensorMemory.DataPointer(k);
            values[i] = TensorMemory.DataPointer(v);
        }
        // Every layer rotates by the same angles at this position.
        for (int i = 0; i < _cos.Length; i++)
        {
            float angle = pos * _invFreq[i]; // fp32 product, as the torch path computes the frequencies
            // a bf16 model's tables are rounded to bf16 (RotaryEmbedding.CosSin)
            _cos[i] = _bf16 ? Bf16StepMath.Round(MathF.Cos(angle)) : MathF.Cos(angle);
            _sin[i] = _bf16 ? Bf16StepMath.Round(MathF.Sin(angle)) : MathF.Sin(angle);
        }
        var logits = empty([1, 1, _c.VocabSize], ScalarType.Float32);
        var work = new Work(id, pos, cache.Capacity, keys, values, HeadMatrix(), (nint)Data(logits));
        if (threads == 1)
        {
            Run(work, 0, 1, null);
        }
        else
        {
            // One hand-off per token, not one per matrix-vector product: the threads meet at a barrier between the
            // phases of a layer. LongRunning gives each helper its own thread, so all of them are running when the
            // barrier needs them.
            var barrier = new SpinningBarrier(threads);
            var helpers = new Task[threads - 1];
            for (int t = 1; t < threads; t++)
            {
                int part = t;
                helpers[t - 1] = Task.Factory.StartNew(() => Run(work, part, threads, barrier), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            }
            Run(work, 0, threads, barrier);
            Task.WaitAll(helpers);
        }
        cache.Advance(1);
        return logits;
    }

    /// <summary>What one step reads and writes besides the scratch vectors: the token, its position, the cache's layer
    /// storage, the head and the logits.</summary>
    private sealed record Work(long Id, int Pos, long Capacity, nint[] Keys, nint[] Values, Matrix Head, nint Logits);

    /// <summary>
    /// Part <paramref name="t"/> of <paramref name="threads"/> of one step, four phases a layer with a barrier after each:
    /// (1) q, k and v of this thread's KV groups, their RoPE, cache writes and attention; (2) its rows of o_proj; (3) the
    /// residual and norm, then its rows of gate and up and their SwiGLU; (4) its rows of down_proj. Every thread keeps
    /// the whole residual stream and its norm itself, computed alike, so no phase waits for one thread's vector work.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Run(Work w, int t, int threads, SpinningBarrier? barrier)
    {
        int h = _c.HiddenSize, d = _c.HeadDim, group = _c.NumHeads / _c.NumKvHeads;
        fixed (float* x = _x[t], n = _n[t], scores = _scores[t], q = _q, k = _k, v = _v, attn = _attn, o = _o, gate = _gate, up = _up)
        fixed (float* nIn = _nIn[t], attnIn = _attnIn[t], gateIn = _gateIn[t])
        fixed (ushort* staging = _staging[t])
        {
            var inputs = _inputs[t];
            int qd = _c.NumHeads * d;
            if (_bf16) Bf16StepMath.Widen((ushort*)TensorMemory.DataPointer(_model.EmbedTokens) + w.Id * h, x, h);
            else Copy(Data(_model.EmbedTokens) + w.Id * h, x, h);
            var (g0, g1) = Part(_c.NumKvHeads, t, threads);
            for (int i = 0; i < _layers.Length; i++)
            {
                var l = _layers[i];
                Norm(x, (float*)l.InputNorm, n, h, l.InputEps);
                Input(n, nIn, h, inputs);
                for (int g = g0; g < g1; g++)
                {
                    float* qg = q + g * group * d, kg = k + g * d, vg = v + g * d;
                    Rows(l.Q, n, nIn, q, g * group * d, (g + 1) * group * d, staging, inputs);
                    Rows(l.K, n, nIn, k, g * d, (g + 1) * d, staging, inputs);
                    Rows(l.V, n, nIn, v, g * d, (g + 1) * d, staging, inputs);
                    // the KV group's cache rows [Hkv, capacity, d] of batch 1, in the compute dtype
                    long group0 = g * w.Capacity * d, slot = group0 + w.Pos * d;
                    if (_bf16)
                    {
                        Bf16StepMath.Rope(qg, group, d, _cos, _sin);
                        Bf16StepMath.Rope(kg, 1, d, _cos, _sin);
                        ushort* kc = (ushort*)w.Keys[i], vc = (ushort*)w.Values[i];
                        Bf16StepMath.Narrow(kg, kc + slot, d);
                        Bf16StepMath.Narrow(vg, vc + slot, d);
                        Bf16StepMath.Attention(qg, kc + group0, vc + group0, attn + g * group * d, scores, group, d, w.Pos + 1);
                    }
                    else
                    {
                        Rope(qg, group, d);
                        Rope(kg, 1, d);
                        float* kc = (float*)w.Keys[i], vc = (float*)w.Values[i];
                        Copy(kg, kc + slot, d);
                        Copy(vg, vc + slot, d);
                        Attention(qg, kc + group0, vc + group0, attn + g * group * d, scores, group, w.Pos + 1);
                    }
                }
                barrier?.SignalAndWait();
                Input(attn, attnIn, qd, inputs);
                Share(l.O, attn, attnIn, o, t, threads, staging, inputs);
                barrier?.SignalAndWait();
                Residual(x, o, h);
                Norm(x, (float*)l.PostNorm, n, h, l.PostEps);
                Input(n, nIn, h, inputs);
                // each thread finishes SwiGLU on its own rows, so the product needs no barrier of its own
                var (from, to) = Share(l.Gate, n, nIn, gate, t, threads, staging, inputs);
                Share(l.Up, n, nIn, up, t, threads, staging, inputs);
                if (_bf16) Bf16StepMath.SwiGlu(gate, up, from, to);
                else for (int j = from; j < to; j++) gate[j] = gate[j] / (1f + MathF.Exp(-gate[j])) * up[j]; // silu(gate)·up
                barrier?.SignalAndWait();
                Input(gate, gateIn, _c.IntermediateSize, inputs);
                Share(l.Down, gate, gateIn, o, t, threads, staging, inputs);
                barrier?.SignalAndWait();
                Residual(x, o, h);
            }
            Norm(x, (float*)_finalNorm, n, h, _model.FinalNorm.Eps);
            Input(n, nIn, h, inputs);
            Share(w.Head, n, nIn, (float*)w.Logits, t, threads, staging, inputs);
        }
    }

    /// <summary>The head: the separate dense lm_head, or the tied embeddings (no module to check).</summary>
    private Matrix HeadMatrix() =>
        _model.LmHead is DenseLinear dense ? Matrix.Dense(dense, dense.Weight) : Matrix.Dense(null, _model.EmbedTokens);

    private void Norm(float* x, float* weight, float* output, int n, double eps)
    {
        if (_bf16) Bf16StepMath.RmsNorm(x, weight, output, n, eps);
        else RmsNorm(x, weight, output, n, eps);
    }

    private void Residual(float* x, float* y, int n)
    {
        if (_bf16) Bf16StepMath.Add(x, y, n);
        else Add(x, y, n);
    }

    /// <summary>Rows [t·chunk, (t+1)·chunk) of y = W·x; returns that range. The chunk is a multiple of <see cref="Rows"/>'
    /// four-row blocks, so every row is summed as it is on one thread.</summary>
    private (int From, int To) Share(in Matrix m, float* x, float* laidOut, float* y, int t, int threads, ushort* staging, StepInputs inputs)
    {
        int chunk = ((m.Rows + threads - 1) / threads + 3) & ~3;
        int from = Math.Min(m.Rows, t * chunk), to = Math.Min(m.Rows, (t + 1) * chunk);
        Rows(m, x, laidOut, y, from, to, staging, inputs);
        return (from, to);
    }

    /// <summary>Rows [r0, r1) of y = W·x (+ the adapter term): dense fp32 by
    /// <see cref="Rows(float*, float*, float*, int, int, int)"/>, dense bf16 by <see cref="Bf16GemvKernel"/> (or
    /// <see cref="Bf16StepMath.Rows"/>), 4-bit and 8-bit by the fused gemv kernels; the vector kernels read
    /// <paramref name="laidOut"/> (x deinterleaved). All sum in fp32, as the matmuls they stand in for; with bf16
    /// activations the sums are rounded to bf16 (the matmul's output), and the 4-bit kernel also rounds its per-block
    /// tables (the dequantized bf16 weight). An active adapter's term is added by the kernels' output
    /// (<see cref="GemvOutput"/>: the base output rounded, plus Σ u·B in fp32, rounded again), after the dense products
    /// by the same output. With bf16 activations the kernels write bf16 bits to <paramref name="staging"/>.</summary>
    private void Rows(in Matrix m, float* x, float* laidOut, float* y, int r0, int r1, ushort* staging, StepInputs inputs)
    {
        var adapter = m.Slot >= 0 ? _terms[m.Slot] : default;
        float* u = adapter.Term is { } term ? inputs.LowRank(m.Slot % Kinds, term, (float*)adapter.A, x, m.Cols) : null;
        if (m.FourBit is { } w)
            FourBitGemvKernel.Run(w, m.Path == DequantKernelPath.Scalar ? x : laidOut, 1, r0, r1, Output(m, adapter, u, y, staging, r0), m.Path);
        else if (m.Int8 is { } w8)
            Int8GemvKernel.Run(w8, inputs.Int8(x, m.Cols, m.Int8Threshold), 1, r0, r1, Output(m, adapter, u, y, staging, r0), Int8Path);
        else
        {
            if (m.Bf16)
            {
                if (m.Path != DequantKernelPath.Scalar) Bf16GemvKernel.Run((ushort*)m.Data, m.Cols, laidOut, 1, r0, r1, new GemvOutput(y, bf16: false, m.Rows));
                else Bf16StepMath.Rows((ushort*)m.Data, x, y, m.Cols, r0, r1);
                Bf16StepMath.Round(y, r0, r1);
            }
            else
                Rows((float*)m.Data, x, y, m.Cols, r0, r1);
            if (u == null) return;
            // the base output as it is held (bf16 values already), then the term as LoraLinear adds it
            var output = Output(m, adapter, u, y, staging, r0);
            for (int r = r0; r < r1; r++) output.Store(0, r, y[r]);
        }
        if (_bf16) Bf16StepMath.Widen(staging, y + r0, r1 - r0);
    }

    /// <summary>Where rows [r0, ..) of a product go: fp32 straight into y, bf16 bits into this thread's staging (shifted,
    /// since a kernel writes output row o at o), with the adapter term when one is active.</summary>
    private GemvOutput Output(in Matrix m, in AdapterTerm adapter, float* u, float* y, ushort* staging, int r0)
    {
        void* to = _bf16 ? staging - r0 : y;
        return adapter.Term is { } term
            ? new GemvOutput(to, _bf16, m.Rows, u, term.Rank, _bOffsets + m.Slot, (float*)adapter.B, term.BStrideOut, term.BStrideRank)
            : new GemvOutput(to, _bf16, m.Rows);
    }

    /// <summary>A new input vector x for the products that follow: laid out in the 4-bit kernel's input layout, where a
    /// 4-bit weight reads it (every thread lays out its own copy, so no phase waits for one thread's), and what was made
    /// for the last input (adapter u, int8 codes) marked stale.</summary>
    private void Input(float* x, float* laidOut, int n, StepInputs inputs)
    {
        if (_deinterleaves && n % 32 == 0) FourBitGemvKernel.Deinterleave(x, laidOut, 1, n);
        inputs.Next();
    }

    /// <summary>[from, to) of <paramref name="count"/> items for part <paramref name="t"/> of <paramref name="threads"/>.</summary>
    private static (int From, int To) Part(int count, int t, int threads) => (count * t / threads, count * (t + 1) / threads);

    /// <summary>Causal attention of <paramref name="heads"/> query heads that share one KV head, over its first
    /// <paramref name="length"/> cached positions. The heads go through the cache together, so each key and value is
    /// read once per group rather than once per head; each head's sums run in the same order as on its own.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Attention(float* q, float* keys, float* values, float* output, float* scores, int heads, int length)
    {
        int d = _c.HeadDim;
        float scale = 1f / MathF.Sqrt(d);
        for (int j = 0; j < length; j++)
            for (int head = 0; head < heads; head++)
                scores[head * length + j] = Dot(q + head * d, keys + (long)j * d, d) * scale;
        for (int head = 0; head < heads; head++)
        {
            float* sh = scores + head * length;
            float max = float.NegativeInfinity;
            for (int j = 0; j < length; j++) if (sh[j] > max) max = sh[j];
            float sum = 0;
            for (int j = 0; j < length; j++) { sh[j] = MathF.Exp(sh[j] - max); sum += sh[j]; }
            for (int j = 0; j < length; j++) sh[j] /= sum;
            new Span<float>(output + head * d, d).Clear();
        }
        for (int j = 0; j < length; j++)
            for (int head = 0; head < heads; head++)
                Axpy(scores[head * length + j], values + (long)j * d, output + head * d, d);
    }

    /// <summary>Rotate-half RoPE in place on <paramref name="heads"/> vectors of <paramref name="d"/> at this step's
    /// position (its angles in <see cref="_cos"/> and <see cref="_sin"/>): dimension i pairs with i + d/2.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Rope(float* x, int heads, int d)
    {
        int half = d / 2;
        for (int i = 0; i < half; i++)
        {
            float cos = _cos[i], sin = _sin[i];
            for (int hd = 0; hd < heads; hd++)
            {
                float* v = x + hd * d;
                float a = v[i], b = v[i + half];
                v[i] = a * cos - b * sin;
                v[i + half] = b * cos + a * sin;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RmsNorm(float* x, float* weight, float* output, int n, double eps)
    {
        float squares = Dot(x, x, n);
        float r = 1f / MathF.Sqrt(squares / n + (float)eps);
        for (int i = 0; i < n; i++) output[i] = weight[i] * (x[i] * r);
    }

    /// <summary>y[r] = W[r]·x for rows [r0, r1), four rows per pass over x: one load of x feeds four FMAs, which took a
    /// thread from 4.6 to 9.8 GB/s of weights (two threads: 12.8 → 14.6) on this project's 2-core VM.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Rows(float* w, float* x, float* y, int cols, int r0, int r1)
    {
        int r = r0;
        if (Vector256.IsHardwareAccelerated && cols % 8 == 0)
            for (; r + 4 <= r1; r += 4)
            {
                float* a0 = w + (long)r * cols, a1 = a0 + cols, a2 = a1 + cols, a3 = a2 + cols;
                Vector256<float> s0 = Vector256<float>.Zero, s1 = s0, s2 = s0, s3 = s0;
                for (int i = 0; i < cols; i += 8)
                {
                    var xv = Vector256.Load(x + i);
                    s0 = Vector256.FusedMultiplyAdd(Vector256.Load(a0 + i), xv, s0);
                    s1 = Vector256.FusedMultiplyAdd(Vector256.Load(a1 + i), xv, s1);
                    s2 = Vector256.FusedMultiplyAdd(Vector256.Load(a2 + i), xv, s2);
                    s3 = Vector256.FusedMultiplyAdd(Vector256.Load(a3 + i), xv, s3);
                }
                y[r] = Vector256.Sum(s0); y[r + 1] = Vector256.Sum(s1); y[r + 2] = Vector256.Sum(s2); y[r + 3] = Vector256.Sum(s3);
            }
        for (; r < r1; r++) y[r] = Dot(w + (long)r * cols, x, cols);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Dot(float* a, float* b, int n)
    {
        int i = 0;
        float sum = 0;
        if (Vector256.IsHardwareAccelerated && n >= 32)
        {
            Vector256<float> s0 = Vector256<float>.Zero, s1 = s0, s2 = s0, s3 = s0;
            for (; i + 32 <= n; i += 32)
            {
                s0 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), s0);
                s1 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i + 8), Vector256.Load(b + i + 8), s1);
                s2 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i + 16), Vector256.Load(b + i + 16), s2);
                s3 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i + 24), Vector256.Load(b + i + 24), s3);
            }
            for (; i + 8 <= n; i += 8) s0 = Vector256.FusedMultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), s0);
            sum = Vector256.Sum((s0 + s1) + (s2 + s3));
        }
        for (; i < n; i++) sum += a[i] * b[i];
        return sum;
    }

    /// <summary>y += alpha·x, a product and a sum per element (no fused multiply-add), so vector and scalar lanes round
    /// alike.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Axpy(float alpha, float* x, float* y, int n)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var a = Vector256.Create(alpha);
            for (; i + 8 <= n; i += 8) Vector256.Store(Vector256.Load(y + i) + a * Vector256.Load(x + i), y + i);
        }
        for (; i < n; i++) y[i] += alpha * x[i];
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Add(float* x, float* y, int n)
    {
        for (int i = 0; i < n; i++) x[i] += y[i];
    }

    private static void Copy(float* from, float* to, int n) => new ReadOnlySpan<float>(from, n).CopyTo(new Span<float>(to, n));

    private static bool Is(Tensor t, ScalarType dtype) => t.dtype == dtype && t.is_contiguous();

    private static bool StillAt(Matrix m) => (m.Module is LoraLinear lora ? lora.BaseLayer : m.Module) switch
    {
        DenseLinear d => Is(d.Weight, m.Bf16 ? ScalarType.BFloat16 : ScalarType.Float32) && TensorMemory.DataPointer(d.Weight) == m.Data,
        QuantizedLinear { Weight: Blockwise4BitTensor q } => TensorMemory.DataPointer(q.Packed) == m.Data,
        QuantizedLinear { Weight: Int8RowwiseTensor q } => TensorMemory.DataPointer(q.CB) == m.Data,
        _ => false,
    };

    private static float* Data(Tensor t) => (float*)TensorMemory.DataPointer(t);
}
