using System.Globalization;

namespace FinQLoRA;

/// <summary>
/// A problem with what the user gave us (a file, a key, a value), not a bug.
/// The message is one line that names the file or key, what was found and how to fix it;
/// the CLI prints it without a stack trace.
/// </summary>
public sealed class UserInputException : Exception
{
    private readonly FormattableString? _template;

    public UserInputException(string message, Exception? inner = null) : base(OneLine(message), inner) => Fields = [];

    private UserInputException(FormattableString template) : base(OneLine(template.ToString()))
    {
        _template = template;
        Fields = [.. template.GetArguments().OfType<ConfigField>().Select(f => f.Name).Distinct()];
    }

    /// <summary>
    /// A message about option fields: every <see cref="ConfigField"/> placed in <paramref name="message"/> reads as the
    /// field's name here (<c>bits 3 is not one of 4, 8, 16</c>), and as whatever a front end calls it in
    /// <see cref="Render"/> (the CLI writes <c>--bits 3 ...</c>). The library so never names a CLI flag.
    /// </summary>
    public static UserInputException About(FormattableString message) => new(message);

    /// <summary>The config fields the message is about (empty for messages built from a plain string).</summary>
    public IReadOnlyList<string> Fields { get; }

    /// <summary>The message with each field named by <paramref name="nameOf"/> (e.g. a CLI flag); plain messages as they are.</summary>
    public string Render(Func<string, string> nameOf)
    {
        if (_template == null) return Message;
        object?[] args = [.. _template.GetArguments().Select(a => a is ConfigField f ? nameOf(f.Name) : a)];
        return OneLine(string.Format(CultureInfo.CurrentCulture, _template.Format, args));
    }

    /// <summary>
    /// Messages quote what the files hold — a GGUF tensor name, a Hub path, a JSON parser's echo of the input — and
    /// those may carry newlines or other control characters. Escaped here (<c>\u000a</c>), once for every message,
    /// so "one line on stderr" holds whatever a damaged file contains.
    /// </summary>
    private static string OneLine(string message) => message.Any(char.IsControl)
        ? string.Concat(message.Select(c => char.IsControl(c) ? $"\\u{(int)c:x4}" : c.ToString()))
        : message;
}
