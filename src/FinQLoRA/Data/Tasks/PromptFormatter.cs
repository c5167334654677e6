namespace FinQLoRA.Data.Tasks;

/// <summary>Builds a task's prompt for one raw input. <paramref name="subject"/> is what the question is about
/// where a task needs it: the entity for NER, the question for headline, the medium ("news"/"tweet") for FiQA;
/// null means the task's default.</summary>
public delegate string PromptFormatter(string input, string? subject);
