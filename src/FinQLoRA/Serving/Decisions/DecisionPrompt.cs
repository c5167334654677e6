using FinQLoRA.Data.Chat;
using FinQLoRA.Data.Tokenization;

namespace FinQLoRA.Serving.Decisions;

/// <summary>
/// The prompt one decision question is scored after: the shared input first, the question after it, so that every
/// question of a request starts with the same tokens and the input is prefilled once (the prefix cache holds it).
/// <list type="bullet">
/// <item>With the model's chat template: the input messages, the question appended to the last user message after a
/// blank line (a new user turn when the conversation ends with another role: templates that demand alternating roles
/// accept both), and the assistant's turn opened; the option's label is the assistant's answer.</item>
/// <item>Without one: the input text (a conversation as <c>role: content</c> lines), a blank line, the question, and
/// <c>Answer: </c>; the label follows the space.</item>
/// </list>
/// The question reads <c>Question: {instructions}</c>, then <c>Options:</c> (a score's <c>Levels, lowest first:</c>)
/// with one <c>- {label}: {description}</c> line per option, then <c>Answer with exactly one of the options.</c>
/// A predicate's options are <c>true</c> and <c>false</c>.
/// </summary>
public static class DecisionPrompt
{
    public const string AnswerCue = "Answer: ";

    /// <summary>The text the option labels continue.</summary>
    /// <exception cref="UserInputException">the chat template refuses the conversation (its roles or their order)</exception>
    public static string Context(ChatFormat? format, IReadOnlyList<ChatTurn> input, DecisionQuestion question)
    {
        string block = question.Block();
        if (format is null) return $"{PlainText(input)}\n\n{block}\n{AnswerCue}";
        var messages = input.ToList();
        if (messages.Count > 0 && messages[^1].Role == "user") messages[^1] = messages[^1] with { Content = $"{messages[^1].Content}\n\n{block}" };
        else messages.Add(new ChatTurn("user", block));
        return format.Render(messages);
    }

    /// <summary>Whether the prompt's ids start with an added BOS: a chat render writes its own where the template has one.</summary>
    public static bool AddsBos(ChatFormat? format, ITextTokenizer tokenizer) => format is null && tokenizer.AddsBosByDefault;

    /// <summary>A lone user message is its text; a conversation is one <c>role: content</c> line per message.</summary>
    private static string PlainText(IReadOnlyList<ChatTurn> input) =>
        input is [{ Role: "user" } only] ? only.Content : string.Join("\n", input.Select(m => $"{m.Role}: {m.Content}"));
}
