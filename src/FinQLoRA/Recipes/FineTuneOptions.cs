using FinQLoRA.Data.Tokenization;
using FinQLoRA.Distributed;
using FinQLoRA.Training;

namespace FinQLoRA.Recipes;

/// <summary>What <c>finqlora train</c> runs: a <see cref="TrainConfig"/> and how the run talks to its caller.</summary>
public sealed record FineTuneOptions
{
    public required TrainConfig Config { get; init; }

    /// <summary>The ranks of a data-parallel job; one process when null.</summary>
    public ICommunicator? Communicator { get; init; }

    /// <summary>Overrides the model folder's tokenizer (the demo uses one shipped in a NuGet package).</summary>
    public ITextTokenizer? Tokenizer { get; init; }

    /// <summary>Progress lines (data read, steps, evaluations, checkpoints, notes); the main rank's only.</summary>
    public Action<string>? Progress { get; init; }

    /// <summary>When cancelled (Ctrl-C, SIGTERM), the run saves a checkpoint after the optimizer step in progress and
    /// ends with <see cref="TrainingInterruptedException"/>.</summary>
    public CancellationToken Stop { get; init; }

    /// <summary>How a user error reads in the message that aborts a multi-rank job (the CLI names its flags).</summary>
    public Func<UserInputException, string> DescribeError { get; init; } = e => e.Message;
}
