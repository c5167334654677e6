namespace FinQLoRA.Server.Audit;

/// <summary>Where the audit log goes (<c>--audit-log FILE</c>), when it rotates (<c>--audit-log-max-mib</c>), how many
/// rotated files it keeps (<c>--audit-log-keep</c>) and whether lines carry the prompt and completion text
/// (<c>--audit-content</c>).</summary>
public sealed record AuditLogOptions
{
    public const int DefaultMaxMiB = 100;
    public const int DefaultKeep = 10;

    /// <summary>The JSONL file lines are appended to; rotated files are <c>FILE.1</c> (newest) to <c>FILE.Keep</c>.</summary>
    public required string Path { get; init; }
    /// <summary>A file that would grow past this many MiB is rotated first.</summary>
    public int MaxMiB { get; init; } = DefaultMaxMiB;
    /// <summary>Rotated files kept; the oldest beyond them is deleted at a rotation.</summary>
    public int Keep { get; init; } = DefaultKeep;
    /// <summary>Lines carry the prompt and completion text (off: counts only, no text a customer wrote).</summary>
    public bool IncludeContent { get; init; }

    internal long MaxBytes => MaxMiB * (1L << 20);

    /// <summary>Checks the flags and the files before the model loads: the folder exists, FILE and its rotation slots
    /// are regular files that hold an audit log already (or are absent), so that nothing a user owns is appended to,
    /// renamed or deleted.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Path)) throw new UserInputException("--audit-log must name a file (e.g. --audit-log /var/log/finqlora/audit.jsonl)");
        if (MaxMiB < 1) throw new UserInputException($"--audit-log-max-mib must be at least 1 (got {MaxMiB})");
        if (Keep < 1) throw new UserInputException($"--audit-log-keep must be at least 1 (got {Keep}); rotated files are FILE.1 to FILE.K");
        string full = System.IO.Path.GetFullPath(Path);
        string? folder = System.IO.Path.GetDirectoryName(full);
        if (folder is null || !Directory.Exists(folder))
            throw new UserInputException($"--audit-log {Path}: folder {folder} not found; create it first");
        if (Directory.Exists(full)) throw new UserInputException($"--audit-log {Path} is a folder; name a file inside it");
        foreach (string file in AuditLogFiles.Slots(full, Keep).Prepend(full))
            if (!AuditLogFiles.IsOursOrAbsent(file))
                throw new UserInputException($"--audit-log {Path}: {file} exists and is not a FinQLoRA audit log (its first line does not start with {AuditLogFiles.LineStart}); move it away or choose another file");
    }
}
