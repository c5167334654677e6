namespace FinQLoRA.Inference.Constraints;

/// <summary>
/// A structured-output constraint (a regex, a JSON schema, a choice list) that this engine refuses or cannot read:
/// an unsupported construct or keyword, a syntax error, or a constraint no value can satisfy. The message names the
/// construct and where it is: a 0-based position in a regex, a JSON pointer path in a schema
/// (<c>unsupported JSON Schema keyword 'format' at #/properties/date</c>). A client error, never a server fault.
/// </summary>
public sealed class ConstraintException(string message) : Exception(message)
{
    /// <summary>A problem at <paramref name="position"/> (0-based) of <paramref name="pattern"/>.</summary>
    public static ConstraintException InRegex(string what, int position) => new($"{what} at position {position} of the regex");

    /// <summary>A problem at JSON pointer <paramref name="path"/> of a schema, and what to do instead.</summary>
    public static ConstraintException InSchema(string what, string path, string? hint = null) =>
        new($"{what} at {path}{(hint is null ? "" : $" ({hint})")}");
}
