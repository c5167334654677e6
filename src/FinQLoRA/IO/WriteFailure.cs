namespace FinQLoRA.IO;

/// <summary>
/// Turns the file system's refusals while writing (disk full, quota, read-only, permission, a file where a folder
/// should be) into one user-facing line naming the path. Other I/O errors (a truncated input read inside a writer,
/// say) are not the output's fault and pass through unchanged.
/// </summary>
public static class WriteFailure
{
    // errno values (Linux): EPERM, EACCES, EEXIST (mkdir over a file), ENOTDIR, EISDIR, ENOSPC, EROFS, EDQUOT
    private static readonly Dictionary<int, string> Reasons = new()
    {
        [1] = "permission denied", [13] = "permission denied", [17] = "a file stands where a folder is needed", [20] = "a part of the path is a file, not a folder",
        [21] = "is a folder", [28] = "no space left on the device", [30] = "the file system is read-only", [122] = "disk quota exceeded",
    };

    /// <summary>The user-facing exception for <paramref name="e"/>, or null when it is not a refusal to write.</summary>
    public static UserInputException? Describe(Exception e, string path)
    {
        if (e is UserInputException) return null;
        string? reason = e switch
        {
            UnauthorizedAccessException => "permission denied",
            IOException io when Reasons.TryGetValue(io.HResult & 0xFFFF, out var r) => r,
            IOException io when io.Message.Contains("No space left", StringComparison.OrdinalIgnoreCase) => Reasons[28],
            IOException io when io.Message.Contains("Read-only file system", StringComparison.OrdinalIgnoreCase) => Reasons[30],
            _ => null,
        };
        return reason == null ? null : new UserInputException($"{path}: cannot write: {reason}; free space or choose another location (nothing was half-written)", e);
    }
}
