namespace FinQLoRA.Options;

/// <summary>The one mapping between a snake_case key (the train config's keys, the fields library errors name) and
/// the kebab-case a flag spells it with (<c>max_seq_len</c> ↔ <c>max-seq-len</c>).</summary>
public static class SnakeCase
{
    public static string ToKebab(string key) => key.Replace('_', '-');

    public static string FromKebab(string name) => name.Replace('-', '_');
}
