namespace FinQLoRA.Inference;

/// <summary>
/// Why a generation ended, in OpenAI's vocabulary: <c>stop</c> (a stop token such as EOS was generated, or a stop
/// string appeared) or <c>length</c> (the token budget ran out). Which stop it was is kept as vLLM's <c>stop_reason</c>
/// keeps it: <see cref="StopToken"/> (not part of the output) or <see cref="StopString"/> (the text is cut before it).
/// </summary>
public sealed record FinishReason
{
    public const string StopValue = "stop";
    public const string LengthValue = "length";

    private FinishReason(string value, int? stopToken, string? stopString)
    {
        Value = value;
        StopToken = stopToken;
        StopString = stopString;
    }

    /// <summary><c>stop</c> or <c>length</c>, as OpenAI's <c>finish_reason</c> spells it.</summary>
    public string Value { get; }

    /// <summary>The stop id that ended the output (EOS or one of <see cref="GenerationOptions.StopIds"/>).</summary>
    public int? StopToken { get; }

    /// <summary>The stop string that appeared in the text.</summary>
    public string? StopString { get; }

    public static FinishReason Length { get; } = new(LengthValue, null, null);

    /// <summary>The end of a serving engine's scoring row, which generates nothing (its value reads <c>stop</c>; no
    /// endpoint shows it).</summary>
    public static FinishReason Scored { get; } = new(StopValue, null, null);

    public static FinishReason AtToken(int id) => new(StopValue, id, null);

    public static FinishReason AtString(string stop) => new(StopValue, null, stop);

    /// <summary>A constrained output (structured outputs) is a whole value and nothing may follow it.</summary>
    public static FinishReason Complete { get; } = new(StopValue, null, null);

    /// <summary>OpenAI's <c>finish_reason</c>.</summary>
    public override string ToString() => Value;
}
