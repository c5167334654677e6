namespace FinQLoRA.Inference.Constraints;

/// <summary>
/// The subset construction of an <see cref="Nfa"/>, done lazily: a DFA state is the set of live NFA states (closed
/// under epsilon edges, kept to those with byte edges or accepting) reached so far; it is created the first time a
/// step reaches it and each of its 256 transitions is computed the first time it is asked for, then cached. Since the
/// NFA's dead states are pruned, a step to the empty set is <see cref="Dead"/> and every other state has a match
/// ahead. Not thread-safe: <see cref="CompiledConstraint"/> serializes access.
/// </summary>
internal sealed class LazyDfa
{
    public const int Dead = -1;
    private const int Unknown = -2;

    private readonly Nfa _nfa;
    private readonly List<int[]> _sets = [];
    private readonly List<int[]> _next = [];
    private readonly List<bool> _accepting = [];
    private readonly List<sbyte> _complete = []; // -1 unknown, 0 no, 1 yes
    private readonly Dictionary<int[], int> _ids = new(SetComparer.Instance);
    // scratch for closures: a state is in the current closure when its stamp equals _stamp
    private readonly int[] _seen;
    private int _stamp;

    public LazyDfa(Nfa nfa)
    {
        _nfa = nfa;
        _seen = new int[nfa.StateCount];
        Start = Intern(Closure([nfa.Start]));
    }

    /// <summary>The start state; <see cref="Dead"/> when the constraint matches nothing.</summary>
    public int Start { get; }

    public int StateCount => _sets.Count;

    public bool IsAccepting(int state) => state != Dead && _accepting[state];

    /// <summary>Accepting, and no byte can follow.</summary>
    public bool IsComplete(int state)
    {
        if (state == Dead) return false;
        if (_complete[state] < 0)
        {
            bool any = false;
            for (int b = 0; b < 256 && !any; b++) any = Step(state, (byte)b) != Dead;
            _complete[state] = (sbyte)(!any && _accepting[state] ? 1 : 0);
        }
        return _complete[state] == 1;
    }

    public int Step(int state, byte b)
    {
        if (state == Dead) return Dead;
        int[] row = _next[state];
        int next = row[b];
        if (next != Unknown) return next;
        var targets = new List<int>();
        foreach (int s in _sets[state])
            foreach (var (lo, hi, to) in _nfa.Edges(s))
                if (lo <= b && b <= hi && _nfa.IsLive(to)) targets.Add(to);
        next = targets.Count == 0 ? Dead : Intern(Closure(targets));
        _next[state][b] = next;
        return next;
    }

    /// <summary>The state after <paramref name="bytes"/>, or <see cref="Dead"/>.</summary>
    public int Walk(int state, ReadOnlySpan<byte> bytes)
    {
        foreach (byte b in bytes)
        {
            state = Step(state, b);
            if (state == Dead) break;
        }
        return state;
    }

    /// <summary>The live states reachable by epsilon edges from <paramref name="from"/>, keeping those that matter
    /// for the future (a byte edge, or the accepting state), sorted so that equal sets compare equal.</summary>
    private int[] Closure(IEnumerable<int> from)
    {
        _stamp++;
        var stack = new Stack<int>();
        var kept = new List<int>();
        foreach (int s in from)
            if (_nfa.IsLive(s) && _seen[s] != _stamp)
            {
                _seen[s] = _stamp;
                stack.Push(s);
            }
        while (stack.Count > 0)
        {
            int s = stack.Pop();
            if (s == _nfa.Accept || _nfa.Edges(s).Count > 0) kept.Add(s);
            foreach (int t in _nfa.Epsilons(s))
                if (_nfa.IsLive(t) && _seen[t] != _stamp)
                {
                    _seen[t] = _stamp;
                    stack.Push(t);
                }
        }
        kept.Sort();
        return [.. kept];
    }

    private int Intern(int[] set)
    {
        if (set.Length == 0) return Dead;
        if (_ids.TryGetValue(set, out int id)) return id;
        id = _sets.Count;
        _sets.Add(set);
        var row = new int[256];
        Array.Fill(row, Unknown);
        _next.Add(row);
        _accepting.Add(Array.BinarySearch(set, _nfa.Accept) >= 0);
        _complete.Add(-1);
        _ids.Add(set, id);
        return id;
    }

    private sealed class SetComparer : IEqualityComparer<int[]>
    {
        public static readonly SetComparer Instance = new();
        public bool Equals(int[]? a, int[]? b) => a.AsSpan().SequenceEqual(b);
        public int GetHashCode(int[] set)
        {
            var h = new HashCode();
            foreach (int s in set) h.Add(s);
            return h.ToHashCode();
        }
    }
}
