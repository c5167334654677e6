namespace FinQLoRA.Data.Formats;

/// <summary>Training data layouts: FinLoRA's <c>context</c>/<c>target</c>, Alpaca's <c>instruction</c>/<c>input</c>/<c>output</c>,
/// and chat <c>messages</c> (system/user/assistant, as OpenAI and TRL write them).</summary>
public enum DataFormat { ContextTarget, Alpaca, Chat }

public static class DataFormats
{
    public static string Name(DataFormat f) => f switch
    {
        DataFormat.ContextTarget => "context-target",
        DataFormat.Alpaca => "alpaca",
        _ => "chat",
    };

    /// <summary>Parses <c>data_format</c>; null for "auto" (guessed from the columns).</summary>
    public static DataFormat? Parse(string value, string source) => value.ToLowerInvariant() switch
    {
        "auto" => null,
        "context-target" or "context_target" => DataFormat.ContextTarget,
        "alpaca" => DataFormat.Alpaca,
        "chat" or "messages" => DataFormat.Chat,
        _ => throw new UserInputException($"{source}: data_format = {value} is invalid; expected auto, context-target, alpaca or chat"),
    };
}
