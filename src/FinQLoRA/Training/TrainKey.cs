using System.Globalization;
using System.Text.Json.Nodes;
using FinQLoRA.Options;

namespace FinQLoRA.Training;

/// <summary>
/// One key of the train config, declared once in <see cref="TrainKeys"/>: its snake_case name (the YAML key; the CLI's
/// flag is its kebab-case), what it means, how a text value sets it (with the parse error naming the key), which values
/// are valid, and how its value is written to run.json.
/// </summary>
public sealed class TrainKey
{
    private readonly Func<TrainConfig, string, string, TrainConfig> _set;
    private readonly Func<TrainConfig, JsonNode?> _write;
    private readonly Func<TrainConfig, (object Value, string Expected)?> _check;

    private TrainKey(string name, string description, Func<TrainConfig, string, string, TrainConfig> set,
        Func<TrainConfig, JsonNode?> write, Func<TrainConfig, (object, string)?> check)
    {
        Name = name;
        Description = description;
        _set = set;
        _write = write;
        _check = check;
    }

    public string Name { get; }
    public string Description { get; }

    /// <summary>False for a key only a YAML config sets (the CLI has no flag for it).</summary>
    public bool HasFlag { get; private init; } = true;

    /// <summary>This key, set only from a YAML config.</summary>
    public TrainKey YamlOnly() => new(Name, Description, _set, _write, _check) { HasFlag = false };

    /// <summary>The config with this key set from <paramref name="text"/>; a value that does not parse is refused
    /// with "<paramref name="source"/>: key = 'text' is not ...".</summary>
    public TrainConfig Set(TrainConfig config, string text, string source) => _set(config, text, source);

    /// <summary>The value as run.json records it (the same spelling the key takes).</summary>
    public JsonNode? Write(TrainConfig config) => _write(config);

    /// <summary>Refuses a value outside the key's range: "<paramref name="source"/>: key = value is invalid; expected ...".</summary>
    public void Check(TrainConfig config, string source)
    {
        if (_check(config) is var (value, expected)) throw Invalid(source, Name, value, expected);
    }

    internal static UserInputException Invalid(string source, string key, object value, string expected) =>
        new($"{source}: {key} = {value} is invalid; expected {expected}");

    /// <summary>How one kind of value is read from text: <c>Parse(text, source, key)</c> throws naming the source and key.</summary>
    public sealed record ValueKind<T>(Func<string, string, string, T> Parse, Func<T, JsonNode?> ToJson);

    public delegate bool TryParse<T>(string text, out T value);

    /// <summary>A kind whose refusal reads "<c>source: key = </c>" then <paramref name="refusal"/> of the text.</summary>
    public static ValueKind<T> Kind<T>(TryParse<T> tryParse, Func<string, string> refusal, Func<T, JsonNode?> toJson) =>
        new((text, source, key) => tryParse(text, out T value) ? value : throw new UserInputException($"{source}: {key} = {refusal(text)}"), toJson);

    /// <summary>A key holding a <typeparamref name="T"/>; <paramref name="checks"/> are (valid, expected) pairs,
    /// tried in order.</summary>
    public static TrainKey Of<T>(string name, string description, ValueKind<T> kind, Func<TrainConfig, T> get,
        Func<TrainConfig, T, TrainConfig> set, params (Func<T, bool> Valid, string Expected)[] checks) =>
        new(name, description,
            (c, text, source) => set(c, kind.Parse(text, source, name)),
            c => kind.ToJson(get(c)),
            c =>
            {
                T value = get(c);
                foreach (var (valid, expected) in checks)
                    if (!valid(value)) return (value!, expected);
                return null;
            });

    public static ValueKind<string> Text { get; } = new((t, _, _) => t, v => v);
    public static ValueKind<string> LowerText { get; } = new((t, _, _) => t.ToLowerInvariant(), v => v);
    public static ValueKind<string?> OptionalText { get; } = new((t, _, _) => t, v => v);
    public static ValueKind<string?> OptionalLowerText { get; } = new((t, _, _) => t.ToLowerInvariant(), v => v);
    /// <summary>A frozen-base width: "key = 3 is invalid; expected 4, 8 or 16" before a <see cref="Quantization.WeightBits"/> is made.</summary>
    public static ValueKind<Quantization.WeightBits> Width { get; } = Kind((string t, out Quantization.WeightBits v) =>
    {
        bool ok = int.TryParse(t, NumberStyles.Integer, CultureInfo.InvariantCulture, out int i) && Quantization.WeightBits.IsSupported(i);
        v = ok ? new Quantization.WeightBits(i) : default;
        return ok;
    }, t => $"{t} is invalid; expected {Quantization.WeightBits.Expected}", v => v.Value);

    public static ValueKind<int> Integer { get; } = Kind((string t, out int v) => int.TryParse(t, NumberStyles.Integer, CultureInfo.InvariantCulture, out v), t => $"'{t}' is not an integer", v => v);
    public static ValueKind<long> Integer64 { get; } = Kind((string t, out long v) => long.TryParse(t, NumberStyles.Integer, CultureInfo.InvariantCulture, out v), t => $"'{t}' is not an integer", v => v);
    public static ValueKind<double> Number { get; } = Kind((string t, out double v) => double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out v), t => $"'{t}' is not a number", v => v);
    public static ValueKind<double?> OptionalNumber { get; } = Kind((string t, out double? v) =>
    {
        bool ok = double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out double d);
        v = ok ? d : null;
        return ok;
    }, t => $"'{t}' is not a number", v => v);
    public static ValueKind<bool> TrueFalse { get; } = Kind<bool>(BoolText.TryParse, t => $"'{t}' is not true or false", v => v);

    /// <summary>A value from a fixed set of names (quant, optimizer, lr_schedule, dtype): "key = x is invalid; expected a, b or c".</summary>
    public static ValueKind<T> Named<T>(NamedValues<T> names) where T : struct =>
        Kind<T>(names.TryParse, t => $"{t.ToLowerInvariant()} is invalid; expected {names.Expected}", v => names.Name(v));
}
