using FinQLoRA.Training;

namespace FinQLoRA.Tests.Training;

/// <summary>The exit code and the line with which a failing rank ends a data-parallel job.</summary>
public sealed class RankFailureTests
{
    [Fact]
    public void ExitCodesSayWhatKindOfFailureItWas()
    {
        var user = new UserInputException("data.jsonl:3: invalid JSON");
        Assert.Equal(3, RankFailure.ExitCode(new TrainingStoppedException(user)));
        Assert.Equal(2, RankFailure.ExitCode(user));
        Assert.Equal(1, RankFailure.ExitCode(new InvalidOperationException("boom")));
    }

    [Fact]
    public void TheMessageNamesTheRankAndRendersUserErrorsTheCallersWay()
    {
        var user = new UserInputException("lr is too high");
        Assert.Equal("error: rank 1 of 2: [lr is too high]; aborting the job", RankFailure.Message(user, 1, 2, e => $"[{e.Message}]"));
        Assert.Equal("error: rank 0 of 4: [lr is too high]; aborting the job",
            RankFailure.Message(new TrainingStoppedException(user), 0, 4, e => $"[{e.Message}]"));
        Assert.Equal("error: rank 1 of 2: InvalidOperationException: boom; aborting the job",
            RankFailure.Message(new InvalidOperationException("boom"), 1, 2, e => e.Message));
    }
}
