using FinQLoRA.Data.Chat;
using FinQLoRA.Data.Tasks;

namespace FinQLoRA.Serving.Decisions;

/// <summary>
/// A classification task's example (FinLoRA's <c>Instruction / Input / Answer</c> layout) as a decision: its input
/// text, and a choice over the task's labels asked with its instruction. What lets a task's test file be answered
/// through <c>/v1/decisions</c>, and the same prompts be scored by <c>eval --mode choice</c> or used for training, so
/// that the three see one rendering.
/// </summary>
public static class TaskDecisions
{
    public static (IReadOnlyList<ChatTurn> Input, ChoiceQuestion Question) From(TaskDefinition task, Example example)
    {
        if (task.Labels is not { Count: >= 2 } labels)
            throw UserInputException.About($"{task.Name} is not a classification task with labels; only those are decisions");
        string instruction = FinLoraPrompt.InstructionText(example.Context)
            ?? throw new UserInputException($"{task.Name}: the context does not start with 'Instruction: …\\nInput: ': {Preview(example.Context)}");
        var question = new ChoiceQuestion(instruction, labels.Select(l => new DecisionOption(DecisionValue.Of(l))).ToList());
        return ([new ChatTurn("user", FinLoraPrompt.InputText(example.Context))], question);
    }

    /// <summary>The example with its context rendered as the decision prompt (<see cref="DecisionPrompt"/>), its target kept.</summary>
    public static Example AsDecisionPrompt(TaskDefinition task, Example example, ChatFormat? format = null)
    {
        var (input, question) = From(task, example);
        return new Example(DecisionPrompt.Context(format, input, question), example.Target);
    }

    private static string Preview(string text) => text.Length <= 60 ? text : text[..60] + "…";
}
