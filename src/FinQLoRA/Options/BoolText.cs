namespace FinQLoRA.Options;

/// <summary>The one reading of a true/false option (YAML values and <c>--double-quant</c>-style flags alike):
/// true/yes/1 and false/no/0, in any case.</summary>
public static class BoolText
{
    public static bool TryParse(string text, out bool value)
    {
        switch (text.Trim().ToLowerInvariant())
        {
            case "true" or "yes" or "1": value = true; return true;
            case "false" or "no" or "0": value = false; return true;
            default: value = false; return false;
        }
    }

    /// <summary>The value; otherwise "<paramref name="field"/> 'text' is not true or false".</summary>
    public static bool Parse(string text, string field) => TryParse(text, out bool value) ? value
        : throw UserInputException.About($"{new ConfigField(field)} '{text}' is not true or false");
}
