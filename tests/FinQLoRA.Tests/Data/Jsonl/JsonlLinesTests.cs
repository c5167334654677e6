using System.Text;
using FinQLoRA.Data.Jsonl;
using FinQLoRA.Data.Tasks;
using FinQLoRA.Evaluation;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Data.Jsonl;

/// <summary>The one JSONL line reader: strict UTF-8 with the line number, a cap on one line's length, lines as an editor numbers them.</summary>
public sealed class JsonlLinesTests
{
    private static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);

    [Fact]
    public void LinesAreNumberedLikeAnEditor_CrLfBomAndAMissingFinalNewlineAreHandled()
    {
        using var dir = new TempFolder();
        string path = dir.WriteBytes("a.jsonl", [0xEF, 0xBB, 0xBF, .. Utf8("{\"a\":1}\r\n\n{\"b\":\"é\"}")]);
        Assert.Equal([(1, "{\"a\":1}"), (2, ""), (3, "{\"b\":\"é\"}")], JsonlLines.Read(path).ToList());
    }

    [Fact]
    public void LinesLongerThanTheReadBufferArriveWhole()
    {
        using var dir = new TempFolder();
        string big = new('x', 200_000);
        string path = dir.Write("a.jsonl", $"1\n{big}\n3\n");
        Assert.Equal(["1", big, "3"], JsonlLines.Read(path).Select(l => l.Text).ToList());
    }

    [Fact]
    public void InvalidUtf8IsRefusedWithFileLineAndByte()
    {
        using var dir = new TempFolder();
        // Line 3 is Latin-1 "café": 0xE9 is not a UTF-8 sequence (File.ReadLines made it U+FFFD silently).
        string path = dir.WriteBytes("latin1.jsonl", [.. Utf8("{\"context\":\"a\",\"target\":\"b\"}\n\n{\"context\":\"caf"), 0xE9, .. Utf8("\",\"target\":\"b\"}\n")]);
        var e = Assert.Throws<UserInputException>(() => ExampleJsonl.Read(path));
        Assert.Equal($"{path}:3: not valid UTF-8 (byte 0xE9 at byte 16 of the line); re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)", e.Message);
    }

    [Fact]
    public void UnfinishedMultiByteSequenceAtTheEndOfALineIsInvalid()
    {
        using var dir = new TempFolder();
        string path = dir.WriteBytes("cut.jsonl", [.. Utf8("ok\nab"), 0xC3, .. Utf8("\n")]);
        var e = Assert.Throws<UserInputException>(() => JsonlLines.Read(path).ToList());
        Assert.StartsWith($"{path}:2: not valid UTF-8 (byte 0xC3 at byte 3", e.Message);
    }

    [Fact]
    public void ALineOverTheCapIsRefusedNamingTheLineAndTheCap_ALineAtTheCapIsRead()
    {
        using var dir = new TempFolder();
        string path = dir.Write("long.jsonl", $"{new string('a', 1000)}\n{new string('b', 1001)}\n");
        var lines = JsonlLines.Read(path, maxLineBytes: 1000).GetEnumerator();
        Assert.True(lines.MoveNext());
        Assert.Equal(1000, lines.Current.Text.Length);
        var e = Assert.Throws<UserInputException>(() => lines.MoveNext());
        Assert.Equal($"{path}:2: line is longer than 1000 bytes (the limit for one JSONL line); the file is damaged or not JSONL — each line must be one JSON object followed by a newline", e.Message);
    }

    [Fact]
    public void TheDefaultCapIs16MiB() => Assert.Equal(16 * 1024 * 1024, JsonlLines.MaxLineBytes);

    [Fact]
    public void PredictionFilesUseTheSameReader()
    {
        using var dir = new TempFolder();
        string path = dir.WriteBytes("p.jsonl", [.. Utf8("{\"target\":\"x\",\"output\":\""), 0xFF, .. Utf8("\"}\n")]);
        Assert.StartsWith($"{path}:1: not valid UTF-8", Assert.Throws<UserInputException>(() => PredictionFile.Read(path)).Message);
    }

    [Fact]
    public void MissingFileIsNamed()
    {
        using var dir = new TempFolder();
        string path = dir.PathOf("none.jsonl");
        Assert.StartsWith($"{path}: file not found", Assert.Throws<UserInputException>(() => JsonlLines.Read(path).ToList()).Message);
    }
}
