using System.Text;
using FinQLoRA.Inference.Constraints;

namespace FinQLoRA.Tests.Inference.Constraints;

/// <summary>A pattern's automaton for tests: whole-string matching, and random members drawn by walking it (a random
/// next state among the bytes' distinct targets, so a long string closes as readily as it continues).</summary>
internal sealed class Automaton
{
    private readonly LazyDfa _dfa;

    public Automaton(Pattern pattern) => _dfa = new LazyDfa(Nfa.Compile(pattern));

    public static Automaton Regex(string regex) => new(RegexParser.Parse(regex));

    public bool Matches(string text) => Matches(Encoding.UTF8.GetBytes(text));

    public bool Matches(byte[] bytes) => _dfa.IsAccepting(_dfa.Walk(_dfa.Start, bytes));

    /// <summary>Whether <paramref name="text"/> can still be completed to a match.</summary>
    public bool IsPrefix(string text) => _dfa.Walk(_dfa.Start, Encoding.UTF8.GetBytes(text)) != LazyDfa.Dead;

    /// <summary>A random member, or null when the walk ran past <paramref name="maxBytes"/> without ending.</summary>
    public byte[]? Sample(Random random, double stopWhenAccepting = 0.3, int maxBytes = 4000)
    {
        var bytes = new List<byte>();
        int state = _dfa.Start;
        while (bytes.Count < maxBytes)
        {
            if (_dfa.IsComplete(state) || (_dfa.IsAccepting(state) && random.NextDouble() < stopWhenAccepting)) return [.. bytes];
            var byTarget = new Dictionary<int, List<byte>>();
            for (int b = 0; b < 256; b++)
            {
                int next = _dfa.Step(state, (byte)b);
                if (next == LazyDfa.Dead) continue;
                if (!byTarget.TryGetValue(next, out var list)) byTarget[next] = list = [];
                list.Add((byte)b);
            }
            if (byTarget.Count == 0) return _dfa.IsAccepting(state) ? [.. bytes] : throw new InvalidOperationException("a live state with no way on");
            var group = byTarget.Values.ElementAt(random.Next(byTarget.Count));
            byte chosen = group[random.Next(group.Count)];
            bytes.Add(chosen);
            state = _dfa.Step(state, chosen);
        }
        return null;
    }

    public IEnumerable<string> Samples(int count, int seed, double stopWhenAccepting = 0.3)
    {
        var random = new Random(seed);
        for (int i = 0, tries = 0; i < count && tries < count * 20; tries++)
            if (Sample(random, stopWhenAccepting) is { } b)
            {
                i++;
                yield return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(b);
            }
    }
}
