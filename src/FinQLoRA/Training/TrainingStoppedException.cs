namespace FinQLoRA.Training;

/// <summary>Training stopped on purpose (e.g. the loss became NaN); the message says why and where the last good checkpoint is.</summary>
public sealed class TrainingStoppedException(string message) : Exception(message);
