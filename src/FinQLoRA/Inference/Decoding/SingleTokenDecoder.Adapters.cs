using FinQLoRA.Adapters;
using FinQLoRA.Quantization;
using FinQLoRA.Quantization.Gemv;
using FinQLoRA.Runtime;

namespace FinQLoRA.Inference.Decoding;

internal sealed unsafe partial class SingleTokenDecoder
{
    /// <summary>Projections per layer that can carry an adapter: q, k, v, o, gate, up, down (<see cref="Models.ProjectionKind"/>'s first seven).</summary>
    private const int Kinds = 7;

    private static readonly DequantKernelPath Int8Path = Int8GemvKernel.Resolve(DequantKernelPath.Auto);

    /// <summary>An active adapter's one-row term (<see cref="LoraLinear.OneRowTerm"/>) and its A and B data, as read for
    /// the next step; no term: the base alone.</summary>
    private readonly record struct AdapterTerm(LowRankTerm? Term, nint A, nint B);

    // every projection wrapped by an adapter (its slot: layer · 7 + kind), whose state is read before each step
    private readonly (int Slot, LoraLinear Lora)[] _wrapped;
    private readonly AdapterTerm[] _terms;
    // per slot: where the term's B starts (GemvOutput reads the offset of row 0 from here), pinned
    private readonly long[] _bOffsetArray;
    private readonly long* _bOffsets;
    // the largest rank of any term read so far (the per-thread inputs hold u of that size)
    private int _rank = 1;
    private StepInputs[] _inputs = [];

    /// <summary>
    /// Reads each wrapper's adapter state for the next step: the active adapter's term as the libtorch step's fused
    /// gemv would build it for one row (the same object while the adapter and its tensors stay, so a decode reads no
    /// pointers after its first step), or none. An adapter activated, switched or switched off between steps is the one
    /// the next step adds. False when a state is outside <see cref="ManagedStepSupport.AdapterKinds"/>.
    /// </summary>
    private bool ReadAdapters()
    {
        foreach (var (slot, lora) in _wrapped)
        {
            if (ManagedStepSupport.RejectsAdapter(lora) is not null) return false;
            var term = lora.OneRowTerm();
            ref var read = ref _terms[slot];
            if (ReferenceEquals(term, read.Term)) continue;
            if (term is null)
            {
                read = default;
                continue;
            }
            read = new AdapterTerm(term, TensorMemory.DataPointer(term.A), TensorMemory.DataPointer(term.B));
            _bOffsets[slot] = term.BOffsets[0];
            _rank = Math.Max(_rank, term.Rank);
        }
        return true;
    }
}
