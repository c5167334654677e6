namespace FinQLoRA.Tests.Distributed;

/// <summary>
/// A class fixture that runs one scenario of the test host (tests/FinQLoRA.MpiHost) under <c>mpirun -np 2</c> once,
/// on first use, for all the tests of its class; each test then checks the lines of one operation.
/// </summary>
public abstract class HostScenarioJob(string scenario)
{
    private readonly Lazy<MpiJob> _job = new(() => MpiJob.RunHost(scenario, TimeSpan.FromSeconds(60)));

    /// <summary>The finished job; fails the calling test with the whole output unless mpirun exited 0.</summary>
    public MpiJob Succeeded
    {
        get
        {
            MpiJob job = _job.Value;
            Assert.True(job.ExitCode == 0, $"mpirun exited with {job.ExitCode}:\n{job.Output}");
            return job;
        }
    }
}
