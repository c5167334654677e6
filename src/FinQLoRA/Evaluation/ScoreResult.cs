using System.Text.Json.Serialization;

namespace FinQLoRA.Evaluation;

/// <summary>Scores of one task's predictions. Fractions in [0, 1].</summary>
/// <param name="Task">Task name.</param>
/// <param name="N">Examples scored.</param>
/// <param name="Accuracy">Classification: label accuracy; tag lists: element accuracy; text: normalised exact match.</param>
/// <param name="WeightedF1">scikit-learn weighted F1 over scored classes (elements for tag lists); null for free text.</param>
/// <param name="TokenF1">Mean SQuAD token F1, free-text tasks only.</param>
/// <param name="Unmatched">Outputs (elements for tag lists) with no recognisable answer: no label, no number, empty.</param>
public sealed record ScoreResult(
    [property: JsonPropertyName("task")] string Task,
    [property: JsonPropertyName("n")] int N,
    [property: JsonPropertyName("accuracy")] double Accuracy,
    [property: JsonPropertyName("weighted_f1")] double? WeightedF1,
    [property: JsonPropertyName("token_f1"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] double? TokenF1,
    [property: JsonPropertyName("unmatched")] int Unmatched);
