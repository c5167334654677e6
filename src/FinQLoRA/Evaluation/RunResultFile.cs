using System.Text.Json;
using FinQLoRA.IO;

namespace FinQLoRA.Evaluation;

/// <summary>Reads and writes <c>results.json</c> (an array of <see cref="RunResult"/>; a single object is
/// accepted when reading).</summary>
public static class RunResultFile
{
    public const string FileName = "results.json";

    private static readonly JsonSerializerOptions Options = new() { WriteIndented = true };

    public static void Write(string path, IReadOnlyList<RunResult> results) =>
        AtomicFile.WriteAllText(path, JsonSerializer.Serialize(results, Options) + "\n");

    /// <summary>Reads <c>DIR/results.json</c>, or the file itself when a file is given.</summary>
    public static IReadOnlyList<RunResult> Read(string runDirOrFile)
    {
        string path = Directory.Exists(runDirOrFile) ? Path.Combine(runDirOrFile, FileName) : runDirOrFile;
        if (!File.Exists(path)) throw new UserInputException($"{path}: no results file; a run directory must contain {FileName}");
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            var results = doc.RootElement.ValueKind == JsonValueKind.Array
                ? doc.RootElement.Deserialize<List<RunResult>>()!
                : [doc.RootElement.Deserialize<RunResult>()!];
            foreach (var r in results)
                if (string.IsNullOrWhiteSpace(r.Task) || string.IsNullOrWhiteSpace(r.Model))
                    throw new UserInputException($"{path}: a result has no \"task\" or \"model\"; every entry needs both");
            return results;
        }
        catch (JsonException ex)
        {
            throw new UserInputException($"{path}: invalid results JSON at line {(ex.LineNumber ?? 0) + 1} ({ex.Message.Split('\n')[0]})", ex);
        }
    }
}
