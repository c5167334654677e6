namespace FinQLoRA.Data.Tasks;

/// <summary>Financial PhraseBank <c>Sentences_*Agree.txt</c>: one <c>sentence@label</c> per line, Latin-1
/// (or UTF-8 in re-encoded copies; detected). The prompt is the task's (FinLoRA's fpb_test wording, "this news").</summary>
internal sealed class FinancialPhraseBankSource : ITaskSource
{
    public IEnumerable<Example> Read(string path, SourceContext context)
    {
        var labels = context.Task.Labels!;
        foreach (var (line, text) in SourceFiles.Lines(SourceFiles.ReadUtf8OrLatin1(path)))
        {
            if (text.Trim().Length == 0) continue;
            int at = text.LastIndexOf('@');
            if (at < 0) throw new UserInputException($"{path}:{line}: no '@' in line; Financial PhraseBank lines are 'sentence@label'");
            string sentence = text[..at], label = text[(at + 1)..].Trim();
            if (!labels.Contains(label)) throw new UserInputException($"{path}:{line}: label '{label}' is not one of {string.Join("/", labels)}");
            yield return new Example(context.Task.PromptFor(sentence), label);
        }
    }
}
