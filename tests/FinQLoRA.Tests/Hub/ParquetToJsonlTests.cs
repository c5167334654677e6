using System.Text.Json;
using FinQLoRA.Hub;
using Parquet;
using Parquet.Serialization;

namespace FinQLoRA.Tests.Hub;

/// <summary>Parquet written by Parquet.Net itself comes back as the same rows in JSON Lines.</summary>
public sealed class ParquetToJsonlTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"finqlora-parquet-{Guid.NewGuid():N}");

    public ParquetToJsonlTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    public sealed class PhrasebankRow
    {
        public string Sentence { get; set; } = "";
        public long Label { get; set; }
        public double? Score { get; set; }
        public string? Note { get; set; }
    }

    [Fact]
    public async Task Rows_AcrossRowGroups_BecomeOneJsonObjectPerLine()
    {
        var rows = Enumerable.Range(0, 250).Select(i => new PhrasebankRow
        {
            Sentence = i % 3 == 0 ? $"Profit rose {i}% — \"strong\" quarter\nline two" : $"Sales fell {i}%",
            Label = i % 3,
            Score = i % 5 == 0 ? null : i / 4.0,
            Note = i % 2 == 0 ? "ok" : null,
        }).ToList();
        string parquet = Path.Combine(_dir, "train.parquet");
        await ParquetSerializer.SerializeAsync(rows, parquet, new ParquetOptions { RowGroupSize = 100 });
        await using (ParquetReader reader = await ParquetReader.CreateAsync(parquet))
            Assert.Equal(3, reader.RowGroupCount);

        string jsonl = Path.Combine(_dir, "train.jsonl");
        long count = await ParquetToJsonl.ConvertAsync(parquet, jsonl);

        string[] lines = File.ReadAllLines(jsonl);
        Assert.Equal(250, count);
        Assert.Equal(250, lines.Length);
        for (int i = 0; i < rows.Count; i++)
        {
            using JsonDocument doc = JsonDocument.Parse(lines[i]);
            JsonElement o = doc.RootElement;
            Assert.Equal(rows[i].Sentence, o.GetProperty("Sentence").GetString());
            Assert.Equal(rows[i].Label, o.GetProperty("Label").GetInt64());
            if (rows[i].Score is double score) Assert.Equal(score, o.GetProperty("Score").GetDouble());
            else Assert.Equal(JsonValueKind.Null, o.GetProperty("Score").ValueKind);
            Assert.Equal(rows[i].Note, o.GetProperty("Note").ValueKind == JsonValueKind.Null ? null : o.GetProperty("Note").GetString());
        }
    }

    [Fact]
    public async Task NotParquet_IsAOneLineUserError()
    {
        string bad = Path.Combine(_dir, "bad.parquet");
        File.WriteAllText(bad, "<html>not parquet</html>");
        var error = await Assert.ThrowsAsync<UserInputException>(() => ParquetToJsonl.ConvertAsync(bad, Path.Combine(_dir, "bad.jsonl")));
        Assert.Contains("bad.parquet", error.Message);
        Assert.False(File.Exists(Path.Combine(_dir, "bad.jsonl")));
    }
}
