namespace FinQLoRA.Data.Chat;

/// <summary>Collects a conversation's rendered text as <see cref="SftSegment"/>s: framing (no loss) and the assistant
/// turns (loss). Neighbouring pieces of the same kind join, so a segment boundary falls only where the loss starts or
/// stops: the fewer boundaries, the closer encoding segment by segment comes to encoding the whole text.</summary>
internal sealed class SegmentWriter
{
    private readonly List<SftSegment> _segments = [];

    public void Frame(string text) => Add(text, false);

    public void Train(string text) => Add(text, true);

    /// <summary>An assistant turn's text is trained; anything else is framing.</summary>
    public void Turn(string role, string text) => Add(text, role == "assistant");

    public List<SftSegment> Segments => _segments;

    private void Add(string text, bool trained)
    {
        if (text.Length == 0) return;
        if (_segments.Count > 0 && _segments[^1].Trained == trained)
            _segments[^1] = new SftSegment(_segments[^1].Text + text, trained);
        else
            _segments.Add(new SftSegment(text, trained));
    }
}
