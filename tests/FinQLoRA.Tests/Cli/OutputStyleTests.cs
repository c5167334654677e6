using System.Diagnostics;
using FinQLoRA.Cli;
using FinQLoRA.Tests.Support;
using FinQLoRA.Training;

namespace FinQLoRA.Tests.Cli;

/// <summary>A rank under an MPI launcher writes plain lines even on the pseudo-terminal Open MPI gives it: no colour
/// codes, no wrapping, no live redraws, unless colour is asked for; NO_COLOR always wins.</summary>
public sealed class OutputStyleTests
{
    private static OutputStyle For(bool redirected, params string[] variables)
    {
        var environment = variables.Select(v => v.Split('=', 2)).ToDictionary(v => v[0], v => v[1]);
        return OutputStyle.For(redirected, environment.GetValueOrDefault);
    }

    [Fact]
    public void ATerminalGetsColoursAndLiveProgress() => Assert.Equal(new OutputStyle(true, true), For(redirected: false));

    [Theory]
    [InlineData("OMPI_COMM_WORLD_RANK=0")]
    [InlineData("PMIX_RANK=1")]
    [InlineData("PMI_RANK=0")]
    [InlineData("SLURM_PROCID=0", "SLURM_NTASKS=2")]
    [InlineData("OMPI_COMM_WORLD_RANK=0", "FORCE_COLOR=0")]
    [InlineData("OMPI_COMM_WORLD_RANK=0", "FORCE_COLOR=1", "NO_COLOR=1")]
    public void ALaunchedRankOnATerminalWritesPlainLines(params string[] variables) =>
        Assert.Equal(OutputStyle.Plain, For(redirected: false, variables));

    [Theory]
    [InlineData("FORCE_COLOR=1")]
    [InlineData("CLICOLOR_FORCE=1")]
    public void ColourAskedForComesBackWithoutLiveProgress(string variable)
    {
        Assert.Equal(new OutputStyle(false, true), For(redirected: false, "OMPI_COMM_WORLD_RANK=0", variable));
        Assert.Equal(new OutputStyle(false, true), For(redirected: true, variable));
    }

    [Fact]
    public void RedirectedOrNoColorIsPlain()
    {
        Assert.Equal(OutputStyle.Plain, For(redirected: true));
        Assert.Equal(OutputStyle.Plain, For(redirected: false, "NO_COLOR=1"));
    }

    /// <summary>The CLI on a pseudo-terminal (util-linux script, as mpirun gives each rank), with the rank variable of
    /// Open MPI set and the output read from a pipe: help is plain, and its longest lines are not wrapped at 80.</summary>
    [Fact]
    public void UnderOpenMpiOnAPseudoTerminalHelpIsPlainLines()
    {
        string command = $"env OMPI_COMM_WORLD_RANK=0 OMPI_COMM_WORLD_SIZE=1 dotnet '{CliProcess.CliDll}' train --help";
        var psi = new ProcessStartInfo("script", ["-qec", command, "/dev/null"]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, output + p.StandardError.ReadToEnd());
        Assert.DoesNotContain("\u001b", output);
        string data = output.Split(['\r', '\n']).Single(l => l.TrimStart().StartsWith("--data ", StringComparison.Ordinal));
        Assert.True(data.Length > 80, data);
        Assert.EndsWith(TrainKeys.Find("data")!.Description, data);
    }
}
