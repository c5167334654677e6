using System.Runtime.CompilerServices;
using FinQLoRA.Data.Tokenization;

namespace FinQLoRA.Inference.Constraints;

/// <summary>
/// Compiled constraints of one tokenizer, kept by their canonical text and end tokens (least recently used out past
/// <see cref="Capacity"/>), so a request repeating a schema pays nothing: its automaton states and token masks are
/// already there. One cache per tokenizer instance, made on first use; the token vocabulary is built then, once.
/// </summary>
public sealed class ConstraintCache
{
    public const int Capacity = 64;

    private static readonly ConditionalWeakTable<ITextTokenizer, ConstraintCache> PerTokenizer = new();

    private readonly ITextTokenizer _tokenizer;
    private readonly Lazy<TokenVocabulary> _vocabulary;
    private readonly object _gate = new();
    private readonly Dictionary<string, LinkedListNode<(string Key, CompiledConstraint Value)>> _entries = [];
    private readonly LinkedList<(string Key, CompiledConstraint Value)> _recent = new();

    private ConstraintCache(ITextTokenizer tokenizer)
    {
        _tokenizer = tokenizer;
        _vocabulary = new Lazy<TokenVocabulary>(() => TokenVocabulary.From(_tokenizer));
    }

    public static ConstraintCache For(ITextTokenizer tokenizer) => PerTokenizer.GetValue(tokenizer, t => new ConstraintCache(t));

    public TokenVocabulary Vocabulary => _vocabulary.Value;

    /// <summary>The compiled <paramref name="spec"/> with <paramref name="endIds"/> as its end tokens (the tokenizer's
    /// EOS ids when null). Throws <see cref="ConstraintException"/> for a constraint that is refused.</summary>
    public CompiledConstraint Get(ConstraintSpec spec, IEnumerable<int>? endIds = null)
    {
        var ends = (endIds ?? _tokenizer.EosIds).Concat(_tokenizer.EosIds).Distinct().Order().ToArray();
        string key = $"{spec.Kind}\n{string.Join(',', ends)}\n{spec.Text}";
        lock (_gate)
        {
            if (_entries.TryGetValue(key, out var hit))
            {
                _recent.Remove(hit);
                _recent.AddFirst(hit);
                return hit.Value.Value;
            }
        }
        var compiled = new CompiledConstraint(spec, Vocabulary, ends); // outside the lock: a big schema takes a while
        lock (_gate)
        {
            if (_entries.TryGetValue(key, out var raced)) return raced.Value.Value;
            _entries[key] = _recent.AddFirst((key, compiled));
            if (_entries.Count > Capacity)
            {
                _entries.Remove(_recent.Last!.Value.Key);
                _recent.RemoveLast();
            }
            return compiled;
        }
    }
}
