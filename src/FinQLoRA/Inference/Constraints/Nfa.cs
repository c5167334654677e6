namespace FinQLoRA.Inference.Constraints;

/// <summary>
/// A Thompson NFA over bytes compiled from a <see cref="Pattern"/>: states joined by byte-range edges and epsilon
/// edges, one start and one accepting state. After construction every state that cannot reach the accepting state is
/// marked dead and its edges are never followed, so a set of live states is non-empty exactly when some continuation
/// still matches (what <see cref="LazyDfa"/> relies on).
/// </summary>
internal sealed class Nfa
{
    /// <summary>States above this are refused: the automaton would cost too much memory and time to build.</summary>
    public const int MaxStates = 400_000;

    private readonly List<List<(byte Lo, byte Hi, int To)>> _edges = [];
    private readonly List<List<int>> _epsilons = [];
    private bool[] _live = [];

    private Nfa() { }

    public int Start { get; private set; }
    public int Accept { get; private set; }
    public int StateCount => _edges.Count;

    public static Nfa Compile(Pattern pattern)
    {
        var nfa = new Nfa();
        nfa.Start = nfa.New();
        nfa.Accept = nfa.Emit(pattern, nfa.Start);
        nfa.MarkLive();
        return nfa;
    }

    public bool IsLive(int state) => _live[state];
    public IReadOnlyList<(byte Lo, byte Hi, int To)> Edges(int state) => _edges[state];
    public IReadOnlyList<int> Epsilons(int state) => _epsilons[state];

    private int New()
    {
        if (_edges.Count >= MaxStates)
            throw new ConstraintException($"the constraint is too large: its automaton passes {MaxStates:N0} states (lower maxLength, maxItems, repetition counts, the number of enum values or the nesting)");
        _edges.Add([]);
        _epsilons.Add([]);
        return _edges.Count - 1;
    }

    private void Edge(int from, byte lo, byte hi, int to) => _edges[from].Add((lo, hi, to));
    private void Epsilon(int from, int to) => _epsilons[from].Add(to);

    /// <summary>Adds <paramref name="p"/> starting at state <paramref name="s"/>; returns the state reached after it.
    /// Loops always return to a fresh head state, so what follows a fragment never leaks into its body.</summary>
    private int Emit(Pattern p, int s)
    {
        switch (p)
        {
            case Pattern.Text t:
                foreach (byte b in t.Bytes)
                {
                    int next = New();
                    Edge(s, b, b, next);
                    s = next;
                }
                return s;
            case Pattern.Chars c:
            {
                int end = New();
                foreach (var seq in Utf8Ranges.Of(c.Set))
                {
                    int cur = s;
                    for (int k = 0; k < seq.Length - 1; k++)
                    {
                        int next = New();
                        Edge(cur, seq[k].Lo, seq[k].Hi, next);
                        cur = next;
                    }
                    Edge(cur, seq[^1].Lo, seq[^1].Hi, end);
                }
                return end;
            }
            case Pattern.Sequence q:
                foreach (var part in q.Parts) s = Emit(part, s);
                return s;
            case Pattern.Choice c:
            {
                int end = New();
                foreach (var alt in c.Alternatives)
                {
                    int a = New();
                    Epsilon(s, a);
                    Epsilon(Emit(alt, a), end);
                }
                return end;
            }
            case Pattern.Repeat r:
                for (int i = 0; i < r.Min; i++) s = Emit(r.Body, s);
                if (r.Max is null) return Loop(r.Body, s);
                for (int i = r.Min; i < r.Max; i++) s = Optional(r.Body, s);
                return s;
            case Pattern.Separated l:
                return EmitSeparated(l, s);
            case Pattern.Members m:
                return EmitMembers(m, s);
            default:
                throw new InvalidOperationException(p.GetType().Name);
        }
    }

    private int Optional(Pattern body, int s)
    {
        int end = New(), a = New();
        Epsilon(s, a);
        Epsilon(Emit(body, a), end);
        Epsilon(s, end);
        return end;
    }

    /// <summary>body* from <paramref name="s"/>, with one copy of the body.</summary>
    private int Loop(Pattern body, int s)
    {
        int head = New();
        Epsilon(s, head);
        int a = New();
        Epsilon(head, a);
        Epsilon(Emit(body, a), head);
        return head;
    }

    private int EmitSeparated(Pattern.Separated l, int s)
    {
        if (l.Max == 0) return s;
        if (l.Min == 0) return Optional(l with { Min = 1 }, s);
        var itemThenSeparator = new Pattern.Sequence([l.Item, l.Separator]);
        for (int i = 1; i < l.Min; i++) s = Emit(itemThenSeparator, s);
        if (l.Max is null)
        {
            // one copy of the item: every path through its end state has just finished an item, so what follows the
            // list may continue from there as well as the separator that loops back
            int head = New();
            Epsilon(s, head);
            int end = Emit(l.Item, head);
            Epsilon(Emit(l.Separator, end), head);
            return end;
        }
        s = Emit(l.Item, s);
        var separatorThenItem = new Pattern.Sequence([l.Separator, l.Item]);
        for (int i = l.Min; i < l.Max; i++) s = Optional(separatorThenItem, s);
        return s;
    }

    /// <summary>Two chains of states: "nothing written yet" (no separator before the next member) and "something
    /// written" (a separator first). Member i is compiled once, entered from either chain; an optional member can be
    /// skipped on both chains, a required one cannot, so the "nothing yet" chain ends at the first required member.</summary>
    private int EmitMembers(Pattern.Members m, int s)
    {
        int? none = s, some = null;
        foreach (var (member, required) in m.List)
        {
            int entry = New();
            if (none is { } n) Epsilon(n, entry);
            if (some is { } t) Epsilon(Emit(m.Separator, t), entry);
            int after = Emit(member, entry);
            int nextSome = New();
            Epsilon(after, nextSome);
            if (!required && some is { } skip) Epsilon(skip, nextSome);
            if (required) none = null;
            some = nextSome;
        }
        int end = New();
        if (none is { } nn) Epsilon(nn, end);
        if (some is { } ss) Epsilon(ss, end);
        return end;
    }

    /// <summary>Live = can reach <see cref="Accept"/>: a backward search over reversed edges.</summary>
    private void MarkLive()
    {
        var reverse = new List<int>[StateCount];
        for (int i = 0; i < StateCount; i++) reverse[i] = [];
        for (int i = 0; i < StateCount; i++)
        {
            foreach (var e in _edges[i]) reverse[e.To].Add(i);
            foreach (int t in _epsilons[i]) reverse[t].Add(i);
        }
        _live = new bool[StateCount];
        var stack = new Stack<int>();
        _live[Accept] = true;
        stack.Push(Accept);
        while (stack.Count > 0)
            foreach (int from in reverse[stack.Pop()])
                if (!_live[from])
                {
                    _live[from] = true;
                    stack.Push(from);
                }
    }
}
