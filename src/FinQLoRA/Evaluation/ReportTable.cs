using System.Globalization;
using System.Text;

namespace FinQLoRA.Evaluation;

/// <summary>A titled table of strings: rendered as Markdown here, as a Spectre table by the CLI.</summary>
public sealed record ReportTable(string Title, IReadOnlyList<string> Columns, IReadOnlyList<IReadOnlyList<string>> Rows)
{
    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        sb.Append("## ").Append(Title).Append("\n\n");
        sb.Append("| ").Append(string.Join(" | ", Columns.Select(Escape))).Append(" |\n");
        sb.Append('|').Append(string.Concat(Columns.Select((_, i) => i == 0 ? " --- |" : " ---: |"))).Append('\n');
        foreach (var row in Rows) sb.Append("| ").Append(string.Join(" | ", row.Select(Escape))).Append(" |\n");
        return sb.Append('\n').ToString();
    }

    internal static string Percent(double? fraction) => fraction is double f ? (100 * f).ToString("0.0", CultureInfo.InvariantCulture) : "–";

    private static string Escape(string s) => s.Replace("|", "\\|");
}
