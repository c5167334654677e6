namespace FinQLoRA.Data.Tasks;

/// <summary>
/// The "Instruction / Input / Answer" prompt layout of the FinLoRA (and FinGPT) classification data:
/// <c>Instruction: {instruction}\nInput: {input}\nAnswer: </c> with the target after the final space.
/// Wording is copied from FinLoRA's test files (shared/data/finlora-test), which are the ground truth.
/// </summary>
public static class FinLoraPrompt
{
    private const string InputMarker = "Input: ";
    private const string AnswerMarker = "\nAnswer:";

    public static string Classification(string instruction, string input) =>
        $"Instruction: {instruction}\nInput: {input}\nAnswer: ";

    /// <summary>"What is the sentiment of this news? Please choose an answer from {negative/neutral/positive}."
    /// <paramref name="medium"/> is "news" or "tweet" as in the reference files.</summary>
    public static string SentimentInstruction(string medium, IReadOnlyList<string> labels) =>
        $"What is the sentiment of this {medium}? Please choose an answer from {{{string.Join('/', labels)}}}.";

    public static string Sentiment(string medium, IReadOnlyList<string> labels, string input) =>
        Classification(SentimentInstruction(medium, labels), input);

    /// <summary>The instruction of a classification context (the text after <c>Instruction: </c> up to <c>\nInput: </c>),
    /// or null for a context without that layout.</summary>
    public static string? InstructionText(string context)
    {
        const string marker = "Instruction: ";
        int end = context.IndexOf("\n" + InputMarker, StringComparison.Ordinal);
        return context.StartsWith(marker, StringComparison.Ordinal) && end > marker.Length ? context[marker.Length..end] : null;
    }

    /// <summary>The input text of a context: the part after <c>Input: </c> up to <c>\nAnswer:</c>;
    /// the whole context for prompts without that layout (XBRL, formula, FinanceBench…).</summary>
    public static string InputText(string context)
    {
        int start = context.StartsWith(InputMarker, StringComparison.Ordinal) ? 0 : context.IndexOf("\n" + InputMarker, StringComparison.Ordinal);
        if (start < 0) return context;
        if (start > 0) start += 1;
        start += InputMarker.Length;
        int end = context.LastIndexOf(AnswerMarker, StringComparison.Ordinal);
        return end >= start ? context[start..end] : context[start..];
    }
}
