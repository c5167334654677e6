namespace FinQLoRA.Serving.Decisions;

/// <summary>A choice's value as OpenAI's Decisions API types it: a string or a boolean (<c>true</c> and <c>"true"</c>
/// are different values). <see cref="Label"/> is the text whose likelihood is scored.</summary>
public readonly record struct DecisionValue
{
    private DecisionValue(string? text, bool? flag)
    {
        Text = text;
        Flag = flag;
    }

    public string? Text { get; }
    public bool? Flag { get; }

    public static DecisionValue Of(string text) => new(text, null);
    public static DecisionValue Of(bool flag) => new(null, flag);

    /// <summary>What the model is asked to answer: the string itself, or <c>true</c>/<c>false</c>.</summary>
    public string Label => Flag is { } b ? (b ? "true" : "false") : Text!;

    public override string ToString() => Flag is { } b ? (b ? "true" : "false") : $"\"{Text}\"";
}
