using static TorchSharp.torch;

namespace FinQLoRA.Inference.Constraints;

/// <summary>
/// A constraint ready to steer decoding with one tokenizer: a lazily determinized automaton over the output's bytes
/// plus, per automaton state, the tokens that keep the output a prefix of a match (cached: a state's set is computed
/// once by a trie walk, its device mask once per device). End tokens (EOS, a chat format's end of turn) are allowed
/// exactly where the output so far is a whole match. States are ints; <see cref="Dead"/> means no match is possible.
/// Thread-safe (one lock): requests are checked on HTTP threads, rows advance on the scheduler thread.
/// </summary>
public sealed class CompiledConstraint
{
    public const int Dead = LazyDfa.Dead;
    /// <summary>Device masks kept per constraint (a mask is vocabulary-sized); beyond it the oldest is freed.</summary>
    public const int MaxCachedMasks = 512;

    private readonly object _gate = new();
    private readonly LazyDfa _dfa;
    private readonly TokenVocabulary _vocabulary;
    private readonly HashSet<int> _endIds;
    private readonly Dictionary<int, ulong[]> _allowed = [];
    private readonly HashSet<int> _noneAllowed = [];
    private readonly Dictionary<(int State, long Vocab, string Device), Tensor> _masks = [];
    private readonly Queue<(int, long, string)> _maskOrder = new();

    public CompiledConstraint(ConstraintSpec spec, TokenVocabulary vocabulary, IEnumerable<int> endIds)
    {
        Spec = spec;
        _vocabulary = vocabulary;
        _endIds = endIds.ToHashSet();
        var nfa = Nfa.Compile(spec.ToPattern());
        _dfa = new LazyDfa(nfa);
        if (_dfa.Start == Dead) throw new ConstraintException($"the {spec.Kind.Replace('_', ' ')} matches no value");
        NfaStates = nfa.StateCount;
    }

    public ConstraintSpec Spec { get; }
    public int Start => _dfa.Start;
    /// <summary>The size of the automaton the constraint compiled to (for limits and benchmarks).</summary>
    public int NfaStates { get; }

    public bool IsAccepting(int state)
    {
        lock (_gate) return _dfa.IsAccepting(state);
    }

    /// <summary>Accepting, and no byte can follow: the value is finished and generation may stop at once.</summary>
    public bool IsComplete(int state)
    {
        lock (_gate) return _dfa.IsComplete(state);
    }

    /// <summary>The state after <paramref name="token"/>: its bytes walked; an end token keeps an accepting state.</summary>
    public int Advance(int state, int token)
    {
        lock (_gate)
        {
            if (_endIds.Contains(token)) return _dfa.IsAccepting(state) ? state : Dead;
            return _vocabulary.BytesOf(token) is { } bytes ? _dfa.Walk(state, bytes) : Dead;
        }
    }

    /// <summary>Whether <paramref name="bytes"/> from the start is a whole match (tests and checks).</summary>
    public bool Matches(ReadOnlySpan<byte> bytes)
    {
        lock (_gate) return _dfa.IsAccepting(_dfa.Walk(_dfa.Start, bytes));
    }

    /// <summary>The tokens allowed in <paramref name="state"/>, a bit set over token ids (do not modify).</summary>
    public ulong[] Allowed(int state)
    {
        lock (_gate) return AllowedLocked(state);
    }

    private ulong[] AllowedLocked(int state)
    {
        if (_allowed.TryGetValue(state, out var bits)) return bits;
        bits = state == Dead ? new ulong[(_vocabulary.Size + 63) / 64] : _vocabulary.Allowed(_dfa, state);
        if (_dfa.IsAccepting(state))
            foreach (int id in _endIds)
                if (id < _vocabulary.Size) bits[id >> 6] |= 1UL << (id & 63);
        _allowed[state] = bits;
        if (!Array.Exists(bits, w => w != 0)) _noneAllowed.Add(state);
        return bits;
    }

    /// <summary>Whether any token is allowed in <paramref name="state"/>.</summary>
    public bool AnyAllowed(int state)
    {
        lock (_gate)
        {
            AllowedLocked(state);
            return !_noneAllowed.Contains(state);
        }
    }

    /// <summary>A bool mask [<paramref name="vocab"/>] on <paramref name="device"/>, true where a token is NOT allowed
    /// (ids past the tokenizer's vocabulary included). Cached; it stays valid until the next call on this constraint
    /// (a full cache frees its oldest mask), so copy it into the step's tensor before asking for another.</summary>
    public Tensor DisallowedMask(int state, long vocab, Device device)
    {
        lock (_gate)
        {
            var key = (state, vocab, device.ToString());
            if (_masks.TryGetValue(key, out var mask)) return mask;
            var bits = AllowedLocked(state);
            var disallowed = new bool[vocab];
            for (long i = 0; i < vocab; i++)
                disallowed[i] = i >= _vocabulary.Size || (bits[i >> 6] & (1UL << (int)(i & 63))) == 0;
            mask = tensor(disallowed, device: device).DetachFromDisposeScope();
            if (_maskOrder.Count >= MaxCachedMasks)
            {
                var oldest = _maskOrder.Dequeue();
                _masks.Remove(oldest, out var old);
                old?.Dispose();
            }
            _masks[key] = mask;
            _maskOrder.Enqueue(key);
            return mask;
        }
    }
}
