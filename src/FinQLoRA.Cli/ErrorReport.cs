using FinQLoRA;
using Spectre.Console.Cli;

namespace FinQLoRA.Cli;

/// <summary>
/// How a failed command ends: everything on stderr (stdout may carry --json for another program), one line, exit 2
/// for the user's input and 1 for anything unexpected; <c>--verbose</c> adds the stack trace and still exits normally.
/// </summary>
public static class ErrorReport
{
    public static int Write(Exception e, bool verbose, TextWriter stderr)
    {
        var user = e as UserInputException ?? e.InnerException as UserInputException;
        bool isUser = user != null || e is CommandParseException or CommandRuntimeException;
        string message = OneLine(user != null ? FlagNames.Render(user) : isUser ? e.Message : $"{e.GetType().Name}: {e.Message}");
        stderr.WriteLine(isUser || verbose ? $"error: {message}" : $"error: {message} (run with --verbose for details)");
        if (verbose) stderr.WriteLine(e.ToString());
        return isUser ? 2 : 1;
    }

    private static string OneLine(string s) => string.Join(' ', s.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
}
