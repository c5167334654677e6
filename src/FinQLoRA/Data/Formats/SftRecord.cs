using FinQLoRA.Data.Chat;
using FinQLoRA.Data.Tasks;

namespace FinQLoRA.Data.Formats;

/// <summary>
/// One training example in any supported format. <see cref="Segments"/> (chat data) lists the rendered text in
/// order with the assistant turns marked as trained; null for prompt/answer data, which is tokenized as
/// <see cref="Answer"/> (prompt, then answer + EOS). <see cref="Answer"/> is also what evaluation generates from: the
/// prompt up to the last assistant turn, and that turn.
/// </summary>
public sealed record SftRecord(Example Answer, IReadOnlyList<SftSegment>? Segments = null)
{
    public static SftRecord Of(Example e) => new(e);

    /// <summary>The value of the field that names this record's privacy unit (a customer id: <c>dp_unit = field:NAME</c>); null when none is read.</summary>
    public string? Unit { get; init; }
}
