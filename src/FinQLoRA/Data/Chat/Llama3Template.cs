namespace FinQLoRA.Data.Chat;

/// <summary>Meta's Llama 3 format: <c>&lt;|begin_of_text|&gt;</c>, then per message
/// <c>&lt;|start_header_id|&gt;role&lt;|end_header_id|&gt;\n\ncontent&lt;|eot_id|&gt;</c>, content trimmed as Meta's
/// template does (Meta-Llama-3-8B-Instruct's tokenizer_config.json).</summary>
internal static class Llama3Template
{
    public const string BeginOfText = "<|begin_of_text|>", StartHeader = "<|start_header_id|>", EndHeader = "<|end_header_id|>", EotId = "<|eot_id|>";

    public static string GenerationPrompt => $"{StartHeader}assistant{EndHeader}\n\n";

    public static void Turns(IReadOnlyList<ChatTurn> messages, SegmentWriter w)
    {
        if (messages.Count > 0) w.Frame(BeginOfText);
        foreach (var m in messages)
        {
            w.Frame($"{StartHeader}{m.Role}{EndHeader}\n\n");
            w.Turn(m.Role, m.Content.Trim() + EotId);
        }
    }

    /// <summary>By its tokens alone: GGUF files and base models carry them without a template file.</summary>
    public static bool HasTokens(Func<string, int?> token) =>
        token(StartHeader) is not null && token(EndHeader) is not null && token(EotId) is not null;
}
