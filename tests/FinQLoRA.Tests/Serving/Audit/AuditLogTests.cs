using System.Text.Json;
using FinQLoRA.Server.Audit;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Serving.Audit;

/// <summary>The audit log's file without a server: rotation at the size limit keeping K files, whole lines from many
/// threads, a torn last line set apart, and files that are not ours never touched.</summary>
public sealed class AuditLogTests
{
    private static byte[] Line(int i, string endpoint = "/v1/completions") =>
        new AuditEntry($"req-{i:D4}", endpoint, DateTimeOffset.UtcNow, includeContent: false).ToJsonLine("default", 200, 1.5);

    private static List<int> Numbers(string file) =>
        AuditLines.Read(file).Select(l => int.Parse(l.GetProperty("request_id").GetString()!["req-".Length..])).ToList();

    [Fact]
    public async Task ItRotatesBeforeTheLimitAndKeepsKFiles()
    {
        using var dir = new TempFolder();
        string file = dir.PathOf("audit.jsonl");
        int size = Line(0).Length;
        const int perFile = 4, keep = 2, lines = 30;
        var log = AuditLog.Open(file, maxBytes: perFile * size + size / 2, keep, includeContent: false);
        for (int i = 0; i < lines; i++) log.Append(Line(i));
        await log.DisposeAsync();

        Assert.False(File.Exists(file + ".3"));
        // newest last: FILE.2, FILE.1, FILE hold the last lines in order, 4 to a full file
        var kept = Numbers(file + ".2").Concat(Numbers(file + ".1")).Concat(Numbers(file)).ToList();
        Assert.Equal(Enumerable.Range(lines - kept.Count, kept.Count), kept);
        Assert.Equal(perFile, Numbers(file + ".2").Count);
        Assert.Equal(perFile, Numbers(file + ".1").Count);
        Assert.Equal(lines % perFile == 0 ? perFile : lines % perFile, Numbers(file).Count);
        foreach (string f in new[] { file, file + ".1", file + ".2" })
            Assert.True(new FileInfo(f).Length <= perFile * size + size / 2);
    }

    [Fact]
    public async Task LinesFromManyThreadsAreWholeAndAllThere()
    {
        using var dir = new TempFolder();
        string file = dir.PathOf("audit.jsonl");
        var log = AuditLog.Open(file, maxBytes: 1L << 30, keep: 1, includeContent: false);
        await Task.WhenAll(Enumerable.Range(0, 8).Select(t => Task.Run(() =>
        {
            for (int i = 0; i < 100; i++) log.Append(Line(t * 100 + i));
        })));
        await log.DisposeAsync();
        Assert.Equal(Enumerable.Range(0, 800), Numbers(file).Order());
    }

    [Fact]
    public async Task NewLinesNeverContinueATornOne()
    {
        using var dir = new TempFolder();
        string file = dir.PathOf("audit.jsonl");
        File.WriteAllBytes(file, [.. Line(0), .. "{\"time\":\"2026-12-07T1"u8.ToArray()]); // a crash mid-write kept part of line 1
        var log = AuditLog.Open(file, maxBytes: 1L << 20, keep: 1, includeContent: false);
        log.Append(Line(2));
        await log.DisposeAsync();
        var lines = File.ReadAllLines(file);
        Assert.Equal(3, lines.Length);
        Assert.Equal("{\"time\":\"2026-12-07T1", lines[1]); // left as it was, on its own line
        Assert.Equal("req-0002", JsonDocument.Parse(lines[2]).RootElement.GetProperty("request_id").GetString());
    }

    [Fact]
    public void AFileThatIsNotAnAuditLogIsRefusedBeforeAnythingIsWritten()
    {
        using var dir = new TempFolder();
        string file = dir.PathOf("audit.jsonl");
        string Refusal(string path) => Assert.Throws<UserInputException>(() => new AuditLogOptions { Path = path, Keep = 3 }.Validate()).Message;

        dir.Write("notes.txt", "my notes\n");
        Assert.Contains("is not a FinQLoRA audit log", Refusal(dir.PathOf("notes.txt")));
        Assert.Equal("my notes\n", File.ReadAllText(dir.PathOf("notes.txt")));

        File.WriteAllBytes(file, Line(0));
        dir.Write("audit.jsonl.3", "someone's file\n"); // a rotation slot that would be deleted
        Assert.Contains("audit.jsonl.3 exists and is not a FinQLoRA audit log", Refusal(file));
        File.Delete(file + ".3");
        new AuditLogOptions { Path = file, Keep = 3 }.Validate(); // ours: appended to

        Assert.Contains("is a folder", Refusal(dir.Path));
        Assert.Contains("folder", Refusal(dir.PathOf("no/such/audit.jsonl")));
        Assert.Contains("--audit-log-max-mib", Assert.Throws<UserInputException>(() => new AuditLogOptions { Path = file, MaxMiB = 0 }.Validate()).Message);
        Assert.Contains("--audit-log-keep", Assert.Throws<UserInputException>(() => new AuditLogOptions { Path = file, Keep = 0 }.Validate()).Message);
    }

    [Fact]
    public void AStringJsonCannotCarryStillMakesALine()
    {
        var line = Line(1, endpoint: "/v1/\ud800x");
        Assert.Equal((byte)'\n', line[^1]);
        Assert.Equal("/v1/\ufffdx", JsonDocument.Parse(line).RootElement.GetProperty("endpoint").GetString());
        Assert.StartsWith("{\"time\":\"", System.Text.Encoding.UTF8.GetString(line));
    }
}
