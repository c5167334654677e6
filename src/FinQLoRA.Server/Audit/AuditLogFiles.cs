using System.Text;

namespace FinQLoRA.Server.Audit;

/// <summary>
/// The audit log's files: FILE and its rotation slots FILE.1 (newest) … FILE.K, and the rule that tells ours from a
/// user's file. Every line we write starts with <see cref="LineStart"/>, so a file whose first bytes are something else
/// was not written by us and is never appended to, renamed or deleted.
/// </summary>
internal static class AuditLogFiles
{
    /// <summary>How every audit line begins (the time is always the first field).</summary>
    public const string LineStart = "{\"time\":\"";

    private static readonly byte[] LineStartBytes = Encoding.ASCII.GetBytes(LineStart);

    public static IEnumerable<string> Slots(string file, int keep) => Enumerable.Range(1, keep).Select(i => Slot(file, i));

    public static string Slot(string file, int n) => $"{file}.{n}";

    /// <summary>Absent, empty, or a regular file that starts like an audit line.</summary>
    public static bool IsOursOrAbsent(string file)
    {
        if (Directory.Exists(file)) return false;
        if (!File.Exists(file)) return true;
        using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var head = new byte[LineStartBytes.Length];
        int read = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        // A crash between creating a file and its first write leaves it empty (or, on a file system that does not order
        // data before size, a short start); a prefix of our start is ours too.
        return head.AsSpan(0, read).SequenceEqual(LineStartBytes.AsSpan(0, read));
    }

    /// <summary>Whether a non-empty file's last byte is not a newline: a write cut short by a crash.</summary>
    public static bool EndsTorn(FileStream stream)
    {
        if (stream.Length == 0) return false;
        var last = new byte[1];
        stream.Seek(-1, SeekOrigin.End);
        stream.ReadExactly(last);
        return last[0] != (byte)'\n';
    }

    /// <summary>Shifts FILE.(K-1) → FILE.K … FILE → FILE.1. The oldest, FILE.K, is deleted first: it is ours (checked at
    /// start; only this rotation writes the slots). A slot someone put there since is neither deleted nor overwritten:
    /// the move onto it throws and the caller keeps appending to FILE.</summary>
    public static void Rotate(string file, int keep)
    {
        string oldest = Slot(file, keep);
        if (File.Exists(oldest) && IsOursOrAbsent(oldest)) File.Delete(oldest);
        for (int n = keep - 1; n >= 1; n--)
            if (File.Exists(Slot(file, n))) File.Move(Slot(file, n), Slot(file, n + 1), overwrite: false);
        File.Move(file, Slot(file, 1), overwrite: false);
    }
}
