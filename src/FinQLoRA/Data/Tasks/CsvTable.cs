using System.Text;

namespace FinQLoRA.Data.Tasks;

/// <summary>One parsed CSV/TSV record and the physical line it starts on (for error messages).</summary>
internal sealed record CsvRecord(int Line, IReadOnlyList<string> Fields);

/// <summary>
/// RFC 4180 reader: quoted fields may hold delimiters, doubled quotes and newlines (TFNS tweets span lines).
/// Like Python's csv module it takes a quote inside an unquoted field literally; an unterminated quoted field
/// or text after a closing quote is malformed and reported with the file and line.
/// </summary>
internal static class CsvTable
{
    public static IEnumerable<CsvRecord> Read(string path, char delimiter)
    {
        string text = SourceFiles.ReadUtf8(path);
        var fields = new List<string>();
        var field = new StringBuilder();
        int line = 1, recordLine = 1, i = 0;
        bool any = false;
        while (i < text.Length)
        {
            char c = text[i];
            if (c == '"' && field.Length == 0)
            {
                int quoteLine = line;
                i++;
                while (true)
                {
                    if (i >= text.Length) throw new UserInputException($"{path}:{quoteLine}: quoted field never closed; fix the quotes (a field starting with \" must end with \")");
                    if (text[i] == '"')
                    {
                        if (i + 1 < text.Length && text[i + 1] == '"') { field.Append('"'); i += 2; continue; }
                        i++;
                        break;
                    }
                    if (text[i] == '\n') line++;
                    field.Append(text[i++]);
                }
                if (i < text.Length && text[i] != delimiter && text[i] != '\n' && text[i] != '\r')
                    throw new UserInputException($"{path}:{line}: unexpected '{text[i]}' after a closing quote; quote the whole field and double inner quotes");
                any = true;
                continue;
            }
            if (c == delimiter) { fields.Add(field.ToString()); field.Clear(); any = true; i++; continue; }
            if (c == '\r' && i + 1 < text.Length && text[i + 1] == '\n') { i++; continue; }
            if (c == '\n')
            {
                if (any || field.Length > 0) { fields.Add(field.ToString()); yield return new CsvRecord(recordLine, fields.ToArray()); }
                fields.Clear(); field.Clear(); any = false;
                line++; recordLine = line; i++;
                continue;
            }
            field.Append(c); i++;
        }
        if (any || field.Length > 0) { fields.Add(field.ToString()); yield return new CsvRecord(recordLine, fields.ToArray()); }
    }

    /// <summary>Reads a table with a header row; returns the column index of each required column.</summary>
    public static (IReadOnlyList<CsvRecord> Rows, int[] Columns) ReadWithHeader(string path, char delimiter, params string[] required)
    {
        var records = Read(path, delimiter).ToList();
        if (records.Count == 0) throw new UserInputException($"{path}: empty file; expected a header row with columns {string.Join(", ", required)}");
        var header = records[0].Fields.Select(h => h.Trim()).ToList();
        var columns = new int[required.Length];
        for (int k = 0; k < required.Length; k++)
        {
            columns[k] = header.FindIndex(h => string.Equals(h, required[k], StringComparison.OrdinalIgnoreCase));
            if (columns[k] < 0) throw new UserInputException($"{path}:1: no column '{required[k]}' in header [{string.Join(", ", header)}]; is this the right file for the task?");
        }
        int needed = columns.Max() + 1;
        foreach (var r in records.Skip(1))
            if (r.Fields.Count < needed) throw new UserInputException($"{path}:{r.Line}: {r.Fields.Count} fields, expected at least {needed} as in the header; check the delimiter and quoting");
        return (records.Skip(1).ToList(), columns);
    }
}
