namespace FinQLoRA.Data.Tokenization;

/// <summary>
/// The text a continuation adds to its prompt. Decoding the new ids alone loses what a SentencePiece tokenizer
/// encodes in the token itself (the leading space of "▁a" after "Once upon"): decode prompt + continuation together
/// and take what follows the decoded prompt.
/// </summary>
public static class ContinuationText
{
    /// <param name="text">the continuation as generated (decoded alone, perhaps cut at a stop string)</param>
    /// <returns><paramref name="text"/> with the whitespace the joint decoding puts before it</returns>
    public static string Of(ITextTokenizer tokenizer, IReadOnlyList<int> promptIds, IReadOnlyList<int> outputIds, string text)
    {
        string prompt = tokenizer.Decode(promptIds);
        string whole = tokenizer.Decode(promptIds.Concat(outputIds));
        if (!whole.StartsWith(prompt, StringComparison.Ordinal)) return text;
        string added = whole[prompt.Length..];
        int at = text.Length == 0 ? added.Length - added.TrimStart().Length : added.IndexOf(text, StringComparison.Ordinal);
        return at > 0 && string.IsNullOrWhiteSpace(added[..at]) ? added[..at] + text : text;
    }
}
