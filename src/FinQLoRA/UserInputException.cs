namespace FinQLoRA;

/// <summary>
/// A problem with what the user gave us (a file, a key, a value), not a bug.
/// The message is one line that names the file or key, what was found and how to fix it;
/// the CLI prints it without a stack trace.
/// </summary>
public sealed class UserInputException(string message, Exception? inner = null) : Exception(message, inner);
