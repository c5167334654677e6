namespace FinQLoRA.Data.Tasks;

/// <summary>
/// Reads the SEC-filings NER files (FIN3/FIN5): one <c>token POS chunk tag</c> line per token, blank lines
/// between sentences, <c>-DOCSTART-</c> lines between documents, IO tags (I-PER…). Consecutive tokens with the
/// same entity type form one entity; a B- tag starts a new one.
/// </summary>
internal static class ConllReader
{
    private static readonly Dictionary<string, string> TypeWords = new()
    {
        ["PER"] = "person", ["ORG"] = "organization", ["LOC"] = "location",
    };

    public static List<NerSentence> Read(string path)
    {
        var sentences = new List<NerSentence>();
        var tokens = new List<string>();
        var entities = new List<(List<string> Tokens, string Type)>();
        string? previousType = null;

        void Flush()
        {
            if (tokens.Count > 0)
                sentences.Add(new NerSentence(string.Join(' ', tokens),
                    entities.Where(e => TypeWords.ContainsKey(e.Type)).Select(e => new NerEntity(string.Join(' ', e.Tokens), TypeWords[e.Type])).ToList()));
            tokens.Clear(); entities.Clear(); previousType = null;
        }

        foreach (var (line, text) in SourceFiles.Lines(SourceFiles.ReadUtf8(path)))
        {
            if (text.Trim().Length == 0) { Flush(); continue; }
            if (text.StartsWith("-DOCSTART-", StringComparison.Ordinal)) { Flush(); continue; }
            var parts = text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length < 2) throw new UserInputException($"{path}:{line}: expected 'token POS chunk tag', found '{text}'");
            string token = parts[0], tag = parts[^1];
            string? type;
            bool begins = false;
            if (tag == "O") type = null;
            else if (tag.Length > 2 && (tag[0] == 'I' || tag[0] == 'B') && tag[1] == '-') { type = tag[2..]; begins = tag[0] == 'B'; }
            else throw new UserInputException($"{path}:{line}: tag '{tag}' is neither O nor I-TYPE/B-TYPE");
            tokens.Add(token);
            if (type != null)
            {
                if (type == previousType && !begins) entities[^1].Tokens.Add(token);
                else entities.Add((new List<string> { token }, type));
            }
            previousType = type;
        }
        Flush();
        return sentences;
    }
}
