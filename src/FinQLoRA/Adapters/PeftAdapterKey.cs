using FinQLoRA.Models;

namespace FinQLoRA.Adapters;

/// <summary>
/// One tensor name of a PEFT adapter file, parsed: <c>base_model.model.</c> + a projection's module path
/// (<see cref="ModelLayout.ModulePath"/>) + <c>.{part}</c>, where part is <c>lora_A.weight</c>, <c>lora_B.weight</c> or
/// DoRA's <c>lora_magnitude_vector</c>. Also accepted: the adapter-name infix some PEFT versions keep
/// (<c>lora_A.default.weight</c>, <c>lora_magnitude_vector.default.weight</c>), a trailing <c>.weight</c> on the
/// magnitude, and keys without the <c>base_model.model.</c> prefix.
/// </summary>
public sealed record PeftAdapterKey(int Layer, ProjectionKind Projection, string Part)
{
    public const string A = "lora_A";
    public const string B = "lora_B";
    public const string Magnitude = "lora_magnitude_vector";
    public const string Prefix = "base_model.model.";

    private static readonly string[] Parts = [A, B, Magnitude];

    /// <summary>The key PEFT writes: <c>base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight</c>.</summary>
    public static string Canonical(string modulePath, string suffix) => Prefix + modulePath + "." + suffix;

    /// <summary>Parses a key, or returns null with the reason it is not an adapter key we can load.</summary>
    public static PeftAdapterKey? TryParse(string key, out string why)
    {
        string expected = $"expected {Prefix}{ModelLayout.ModulePath(0, ProjectionKind.Q)}.lora_A.weight (any layer and projection) / lora_B.weight / lora_magnitude_vector";
        why = expected;
        var segments = (key.StartsWith(Prefix, StringComparison.Ordinal) ? key[Prefix.Length..] : key).Split('.');
        int partAt = Array.FindIndex(segments, s => Parts.Contains(s));
        if (partAt < 0 || segments.Any(s => s.Length == 0 || !s.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-'))) return null;
        string modulePath = string.Join('.', segments[..partAt]);
        if (!ModelLayout.TrySplitBlockModule(modulePath, out int layer, out string module)) return null;
        if (!ModelLayout.TryParseModulePath(modulePath, out _, out var projection))
        {
            why = $"'{module}' is not a projection of a decoder block ({string.Join(", ", ModelLayout.AllKinds.Select(ModelLayout.Relative))})";
            return null;
        }
        string part = segments[partAt];
        var tail = segments[(partAt + 1)..].ToList();
        bool endsWithWeight = tail.Count > 0 && tail[^1] == "weight";
        if (endsWithWeight) tail.RemoveAt(tail.Count - 1);
        bool ok = tail.Count <= 1 && (part == Magnitude || endsWithWeight); // at most an adapter-name infix
        if (!ok)
        {
            why = part == Magnitude ? "unexpected suffix after lora_magnitude_vector" : $"{part} keys end in '.weight' (a bias or extra suffix is not supported)";
            return null;
        }
        why = "";
        return new PeftAdapterKey(layer, projection, part);
    }
}
