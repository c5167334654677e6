using System.Collections;
using System.Text.Json;
using FinQLoRA.IO;
using Parquet;
using Parquet.Serialization;

namespace FinQLoRA.Hub;

/// <summary>
/// Converts a Parquet file (the Hub's usual data set format) into JSON Lines, one object per row with the
/// column names as keys, so the data builders read every data set the same way. Reads one row group at a time,
/// so memory stays at one row group however large the file is.
/// </summary>
public static class ParquetToJsonl
{
    /// <summary>Writes <paramref name="jsonlPath"/> atomically and returns the number of rows.</summary>
    public static async Task<long> ConvertAsync(string parquetPath, string jsonlPath, CancellationToken cancellation = default)
    {
        if (!File.Exists(parquetPath)) throw new UserInputException($"{parquetPath}: no such Parquet file");
        await using var input = new FileStream(parquetPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, useAsync: true);
        int rowGroups;
        try
        {
            await using ParquetReader reader = await ParquetReader.CreateAsync(input, leaveStreamOpen: true, cancellationToken: cancellation);
            rowGroups = reader.RowGroupCount;
        }
        catch (Exception e) when (e is IOException or InvalidDataException or NotSupportedException or ArgumentException)
        {
            throw new UserInputException($"{parquetPath}: not a readable Parquet file ({HubErrors.OneLine(e.Message)}); delete it and fetch again");
        }

        long rows = 0;
        var options = new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        byte[] newline = "\n"u8.ToArray();
        // AtomicFile takes a synchronous writer; the Parquet reads inside are awaited on the thread pool.
        AtomicFile.Write(jsonlPath, output =>
        {
            for (int g = 0; g < rowGroups; g++)
            {
                input.Position = 0;
                var group = ParquetSerializer.DeserializeUntypedAsync(input, rowGroupIndex: g, cancellationToken: cancellation).GetAwaiter().GetResult();
                // The untyped reader leaves null columns out of a row; every line gets every column, null where empty.
                string[] columns = group.Schema.Fields.Select(f => f.Name).ToArray();
                foreach (Dictionary<string, object> row in group.Data)
                {
                    using (var writer = new Utf8JsonWriter(output, options))
                        WriteRow(writer, columns, row);
                    output.Write(newline);
                    rows++;
                }
            }
        });
        return rows;
    }

    private static void WriteRow(Utf8JsonWriter w, string[] columns, Dictionary<string, object> row)
    {
        w.WriteStartObject();
        foreach (string column in columns)
        {
            w.WritePropertyName(column);
            WriteValue(w, row.GetValueOrDefault(column));
        }
        w.WriteEndObject();
    }

    private static void WriteValue(Utf8JsonWriter w, object? value)
    {
        switch (value)
        {
            case null: w.WriteNullValue(); break;
            case string s: w.WriteStringValue(s); break;
            case bool b: w.WriteBooleanValue(b); break;
            case sbyte or byte or short or ushort or int or uint or long: w.WriteNumberValue(Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture)); break;
            case ulong u: w.WriteNumberValue(u); break;
            case float f when float.IsFinite(f): w.WriteNumberValue(f); break;
            case double d when double.IsFinite(d): w.WriteNumberValue(d); break;
            case decimal m: w.WriteNumberValue(m); break;
            case float or double: w.WriteNullValue(); break; // JSON has no NaN or infinity
            case DateTime t: w.WriteStringValue(t.ToString("O", System.Globalization.CultureInfo.InvariantCulture)); break;
            case DateTimeOffset t: w.WriteStringValue(t.ToString("O", System.Globalization.CultureInfo.InvariantCulture)); break;
            case DateOnly d: w.WriteStringValue(d.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture)); break;
            case TimeSpan t: w.WriteStringValue(t.ToString("c", System.Globalization.CultureInfo.InvariantCulture)); break;
            case byte[] bytes: w.WriteBase64StringValue(bytes); break;
            case IDictionary<string, object> map:
                w.WriteStartObject();
                foreach (var (k, v) in map) { w.WritePropertyName(k); WriteValue(w, v); }
                w.WriteEndObject();
                break;
            case IDictionary map:
                w.WriteStartObject();
                foreach (DictionaryEntry e in map) { w.WritePropertyName(Convert.ToString(e.Key, System.Globalization.CultureInfo.InvariantCulture) ?? ""); WriteValue(w, e.Value); }
                w.WriteEndObject();
                break;
            case IEnumerable list:
                w.WriteStartArray();
                foreach (object? item in list) WriteValue(w, item);
                w.WriteEndArray();
                break;
            default: w.WriteStringValue(Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture)); break;
        }
    }
}
