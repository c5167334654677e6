using FinQLoRA.Evaluation;
using FinQLoRA.Tests.Support;
using Xunit;

namespace FinQLoRA.Tests.Evaluation;

public sealed class ReportTests
{
    private static RunResult Result(string task, bool fineTuned, double accuracy, double? f1) =>
        new(task, "Llama-3.2-1B", 4, fineTuned ? 8 : null, fineTuned, accuracy, f1, 100, 8, 0.25, 3L << 30, fineTuned ? 0.5 : 0, fineTuned ? 2_000_000 : 0);

    [Fact]
    public void Report_joins_runs_into_tables_and_a_png_chart()
    {
        using var dir = new TempFolder();
        string baseRun = Path.Combine(dir.Path, "base"), tunedRun = Path.Combine(dir.Path, "tuned");
        Directory.CreateDirectory(baseRun);
        Directory.CreateDirectory(tunedRun);
        RunResultFile.Write(Path.Combine(baseRun, "results.json"), [Result("fpb", false, 0.5, 0.4), Result("xbrl_term", false, 0.1, null)]);
        RunResultFile.Write(Path.Combine(tunedRun, "results.json"), [Result("fpb", true, 0.8765, 0.87)]);

        string outDir = Path.Combine(dir.Path, "report");
        var report = ReportWriter.Write([baseRun, tunedRun], outDir);

        Assert.Equal(["Llama-3.2-1B q4 base", "Llama-3.2-1B q4 r8"], report.Configurations);
        string md = File.ReadAllText(Path.Combine(outDir, "report.md"));
        Assert.Contains("| configuration | fpb | xbrl_term |", md);
        Assert.Contains("| Llama-3.2-1B q4 base | 50.0 | 10.0 |", md);
        Assert.Contains("| Llama-3.2-1B q4 r8 | 87.7 | – |", md);
        Assert.Contains("| Llama-3.2-1B q4 base | 40.0 | – |", md);          // weighted F1 table
        Assert.Contains("| Llama-3.2-1B q4 r8 | 8 | 100 | 0.250 | 3.00 | 0.5000 | 2.000 |", md); // cost table
        byte[] png = File.ReadAllBytes(Path.Combine(outDir, "accuracy.png"));
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
        Assert.True(png.Length > 5_000);
    }

    [Fact]
    public void Results_file_errors_name_the_file()
    {
        using var dir = new TempFolder();
        Assert.Contains("no results file", Assert.Throws<UserInputException>(() => RunResultFile.Read(dir.Path)).Message);
        string bad = dir.Write("results.json", "[{\"task\": \"fpb\"");
        Assert.StartsWith($"{bad}: invalid results JSON", Assert.Throws<UserInputException>(() => RunResultFile.Read(dir.Path)).Message);
    }
}
