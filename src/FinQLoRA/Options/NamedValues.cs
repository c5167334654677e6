namespace FinQLoRA.Options;

/// <summary>
/// The spellings of an option whose values are a fixed set (a YAML value, a flag, a name written to run.json): one
/// table per option, so that parsing, the name written back and the "one of ..." list in errors cannot disagree.
/// Parsing ignores case and surrounding blanks; the first spelling of each value is its canonical name.
/// </summary>
public sealed class NamedValues<T> where T : struct
{
    private readonly Dictionary<string, T> _bySpelling = new(StringComparer.OrdinalIgnoreCase);
    private readonly Dictionary<T, string> _names = [];

    public NamedValues(params (T Value, string[] Spellings)[] table)
    {
        foreach (var (value, spellings) in table)
        {
            _names.Add(value, spellings[0]);
            foreach (string s in spellings) _bySpelling.Add(s, value);
        }
        Names = [.. table.Select(t => t.Spellings[0])];
    }

    /// <summary>The canonical names, in table order.</summary>
    public IReadOnlyList<string> Names { get; }

    /// <summary>"a, b or c": what a value is expected to be, for the train config's "expected ..." messages.</summary>
    public string Expected => Names.Count == 1 ? Names[0] : $"{string.Join(", ", Names.Take(Names.Count - 1))} or {Names[^1]}";

    public bool TryParse(string text, out T value) => _bySpelling.TryGetValue(text.Trim(), out value);

    /// <summary>The value <paramref name="text"/> spells; otherwise "<paramref name="field"/> 'text' is not one of a, b, c".</summary>
    public T Parse(string text, string field) => TryParse(text, out T value) ? value
        : throw UserInputException.About($"{new ConfigField(field)} '{text}' is not one of {string.Join(", ", Names)}");

    /// <summary>The canonical name of <paramref name="value"/>.</summary>
    public string Name(T value) => _names.TryGetValue(value, out string? name) ? name
        : throw new ArgumentOutOfRangeException(nameof(value), value, $"not one of {string.Join(", ", Names)}");
}
