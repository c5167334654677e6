namespace FinQLoRA;

/// <summary>
/// A problem with what the user gave us (a file, a key, a value), not a bug.
/// The message is one line that names the file or key, what was found and how to fix it;
/// the CLI prints it without a stack trace.
/// </summary>
public sealed class UserInputException(string message, Exception? inner = null) : Exception(OneLine(message), inner)
{
    /// <summary>
    /// Messages quote what the files hold — a GGUF tensor name, a Hub path, a JSON parser's echo of the input — and
    /// those may carry newlines or other control characters. Escaped here (<c>\u000a</c>), once for every message,
    /// so "one line on stderr" holds whatever a damaged file contains.
    /// </summary>
    private static string OneLine(string message) => message.Any(char.IsControl)
        ? string.Concat(message.Select(c => char.IsControl(c) ? $"\\u{(int)c:x4}" : c.ToString()))
        : message;
}
