namespace FinQLoRA.Privacy;

/// <summary>
/// What differential privacy protects (the train config's <c>dp_unit</c>): one training example, or every example
/// that shares the value of a data field — a customer id — so that the guarantee is about a customer, not a record
/// (user-level DP; dp-transformers' <c>author_mapping</c>).
/// </summary>
/// <param name="Field">the data field whose value names the unit; null for example-level units</param>
public sealed record DpUnit(string? Field)
{
    public static DpUnit Example { get; } = new((string?)null);

    public bool IsExample => Field is null;

    public static bool TryParse(string text, out DpUnit unit)
    {
        unit = Example;
        if (text.Equals("example", StringComparison.OrdinalIgnoreCase)) return true;
        const string prefix = "field:";
        if (!text.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) || text.Length == prefix.Length) return false;
        unit = new DpUnit(text[prefix.Length..]);
        return true;
    }

    public override string ToString() => Field is null ? "example" : "field:" + Field;
}
