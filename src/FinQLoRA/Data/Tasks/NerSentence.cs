namespace FinQLoRA.Data.Tasks;

/// <summary>A named entity of a CoNLL sentence: its tokens joined by spaces and its type word
/// (location / organization / person).</summary>
internal sealed record NerEntity(string Text, string Type);

/// <summary>One CoNLL sentence: its tokens joined by single spaces (as FinGPT's prompts show them) and its
/// PER/ORG/LOC entities in order of appearance (MISC is not a task label and is skipped).</summary>
internal sealed record NerSentence(string Text, IReadOnlyList<NerEntity> Entities);
