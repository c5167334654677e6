namespace FinQLoRA.Options;

/// <summary>
/// The <c>NAME=PATH[:WEIGHT]</c> form that <c>--data</c> and <c>adapters average --adapter</c> share: the name ends at
/// the first '=' unless what precedes it holds a '/' (then the '=' belongs to the path); the weight, if any, follows
/// the last ':' of the rest; each caller decides when that ':' really starts a weight and how a bad one is named.
/// </summary>
public readonly record struct NamedPath(string? Name, string Rest)
{
    public static NamedPath Split(string value)
    {
        int eq = value.IndexOf('=');
        return eq > 0 && !value[..eq].Contains('/') ? new NamedPath(value[..eq], value[(eq + 1)..]) : new NamedPath(null, value);
    }
}
