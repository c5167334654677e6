using System.Text;

namespace FinQLoRA.Inference.Constraints;

/// <summary>
/// A language over bytes, as a tree of combinators: what the regex parser and the JSON-schema compiler both build and
/// <see cref="Nfa"/> compiles. Characters are Unicode scalar values matched as their UTF-8 bytes. Besides the regular
/// operators there are two combinators JSON needs in linear size: <see cref="Separated"/> (an item list whose
/// unbounded tail reuses one copy of the item) and <see cref="Members"/> (object members in a fixed order, optional
/// ones skippable, separators only between members that are present).
/// </summary>
public abstract record Pattern
{
    private Pattern() { }

    /// <summary>Exactly these bytes.</summary>
    public sealed record Text(byte[] Bytes) : Pattern;

    /// <summary>One character of the set.</summary>
    public sealed record Chars(CharSet Set) : Pattern;

    /// <summary>The parts one after the other (empty: the empty string).</summary>
    public sealed record Sequence(IReadOnlyList<Pattern> Parts) : Pattern;

    /// <summary>Any one of the alternatives (none: nothing matches).</summary>
    public sealed record Choice(IReadOnlyList<Pattern> Alternatives) : Pattern;

    /// <summary><see cref="Min"/> to <see cref="Max"/> (null: unbounded) repetitions.</summary>
    public sealed record Repeat(Pattern Body, int Min, int? Max) : Pattern;

    /// <summary><see cref="Min"/> to <see cref="Max"/> (null: unbounded) items with a separator between two items.</summary>
    public sealed record Separated(Pattern Item, Pattern Separator, int Min, int? Max) : Pattern;

    /// <summary>The members in this order, each optional one present or not, a separator between two present ones.</summary>
    public sealed record Members(IReadOnlyList<(Pattern Member, bool Required)> List, Pattern Separator) : Pattern;

    public static Pattern Empty { get; } = new Sequence([]);
    public static Pattern Nothing { get; } = new Choice([]);

    public static Pattern Literal(string text) => new Text(Encoding.UTF8.GetBytes(text));
    public static Pattern Of(params Pattern[] parts) => parts.Length == 1 ? parts[0] : new Sequence(parts);
    public static Pattern AnyOf(params IEnumerable<Pattern> alternatives) => alternatives.ToList() is [var one] ? one : new Choice(alternatives.ToList());
    public static Pattern Optional(Pattern p) => new Repeat(p, 0, 1);

    /// <summary>This language with every character outside <paramref name="allowed"/> removed: a <see cref="Chars"/>
    /// node keeps only allowed characters, a <see cref="Text"/> holding a disallowed one matches nothing.</summary>
    public Pattern Restrict(CharSet allowed) => this switch
    {
        Text t => Encoding.UTF8.GetString(t.Bytes).EnumerateRunes().All(r => allowed.Contains(r.Value)) ? t : Nothing,
        Chars c => new Chars(c.Set.Intersect(allowed)),
        Sequence s => new Sequence(s.Parts.Select(p => p.Restrict(allowed)).ToList()),
        Choice c => new Choice(c.Alternatives.Select(p => p.Restrict(allowed)).ToList()),
        Repeat r => r with { Body = r.Body.Restrict(allowed) },
        Separated s => s with { Item = s.Item.Restrict(allowed), Separator = s.Separator.Restrict(allowed) },
        Members m => new Members(m.List.Select(x => (x.Member.Restrict(allowed), x.Required)).ToList(), m.Separator.Restrict(allowed)),
        _ => throw new InvalidOperationException(GetType().Name),
    };
}
