using System.Text;

namespace FinQLoRA.Data.Tasks;

/// <summary>The normalised input text of an example, the key for exclusion and for split grouping:
/// <see cref="FinLoraPrompt.InputText"/>, whitespace runs collapsed to one space, trimmed, case-folded.</summary>
public static class InputText
{
    public static string Of(Example example) => Normalize(FinLoraPrompt.InputText(example.Context));

    public static string Normalize(string text)
    {
        var sb = new StringBuilder(text.Length);
        bool space = false;
        foreach (char c in text.Trim())
        {
            if (char.IsWhiteSpace(c)) { space = true; continue; }
            if (space) { sb.Append(' '); space = false; }
            sb.Append(char.ToLowerInvariant(c));
        }
        return sb.ToString();
    }

    /// <summary>The normalised input texts of every example in the given JSONL files.</summary>
    public static HashSet<string> SetOf(IEnumerable<string> jsonlFiles)
    {
        var set = new HashSet<string>(StringComparer.Ordinal);
        foreach (string file in jsonlFiles)
            foreach (var e in ExampleJsonl.Read(file))
                set.Add(Of(e));
        return set;
    }
}
