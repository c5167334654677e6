namespace FinQLoRA.Training;

/// <summary>Training stopped on purpose (e.g. the loss became NaN); the message says why and where the last good checkpoint
/// is. It is written as a <see cref="UserInputException.About"/> message (kept as the inner exception), so that a front end
/// names the settings to change its own way.</summary>
public sealed class TrainingStoppedException(UserInputException reason) : Exception(reason.Message, reason)
{
    public UserInputException Reason => reason;
}
