namespace FinQLoRA.Data.Tasks;

/// <summary>How FinLoRA names a task's files in a data folder (<c>fpb_test.jsonl</c>), which <c>eval --data-dir</c> reads.</summary>
public static class TaskFiles
{
    public static string TestFile(string dataDir, string task) => Path.Combine(dataDir, $"{task}_test.jsonl");
}
