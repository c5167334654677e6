using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Serving.Pipeline;

/// <summary><c>serve --pipeline-stages / --micro-batches</c> outside a fitting MPI job: one line naming the option and
/// the fix, exit 2, before the model is looked at (the model path does not exist, so any later error would show).</summary>
public sealed class PipelineServeOptionsTests
{
    [Fact]
    public void PipelineFlagsThatDoNotFitTheJobAreRefusedInOneLine()
    {
        (string[] Args, string Says)[] cases =
        [
            (["--pipeline-stages", "2"], "--pipeline-stages 2 needs a job of 2 ranks but this one has 1; run: mpirun -np 2 finqlora serve --pipeline-stages 2 ..."),
            (["--pipeline-stages", "0"], "--pipeline-stages must be at least 1 (got 0)"),
            (["--pipeline-stages", "2", "--micro-batches", "0"], "--micro-batches must be at least 1 (got 0)"),
            (["--micro-batches", "2"], "--micro-batches needs --pipeline-stages N > 1"),
            (["--pipeline-stages", "2", "--prefix-cache-gib", "1"], "--prefix-cache-gib 1 cannot be used with --pipeline-stages (prefix caching is not mirrored across ranks yet); use --prefix-cache-gib 0"),
        ];
        foreach (var (args, says) in cases)
        {
            var (code, output) = CliProcess.Run(TimeSpan.FromMinutes(1), ["serve", "--model", "/no/such/model", .. args]);
            Assert.True(code == 2, $"{string.Join(' ', args)}: exit {code}: {output}");
            Assert.Contains(says, output);
            Assert.Single(output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        }
    }
}
