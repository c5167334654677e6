using FinQLoRA.Distributed;

namespace FinQLoRA.Tests.Distributed;

public sealed class LaunchEnvironmentTests
{
    private static LaunchEnvironment Detect(params (string Key, string Value)[] variables)
    {
        var map = variables.ToDictionary(v => v.Key, v => v.Value);
        return LaunchEnvironment.Detect(k => map.GetValueOrDefault(k));
    }

    [Fact]
    public void NoLauncherMeansOneRank() => Assert.Equal(LaunchEnvironment.Single, Detect());

    [Fact]
    public void OpenMpiVariablesAreRead() =>
        Assert.Equal(new LaunchEnvironment("openmpi", 3, 8, 1, 4),
            Detect(("OMPI_COMM_WORLD_RANK", "3"), ("OMPI_COMM_WORLD_SIZE", "8"), ("OMPI_COMM_WORLD_LOCAL_RANK", "1"), ("OMPI_COMM_WORLD_LOCAL_SIZE", "4")));

    [Fact]
    public void SlurmAndPmixVariablesAreRead()
    {
        Assert.Equal(new LaunchEnvironment("slurm", 5, 6, 1, 2),
            Detect(("SLURM_PROCID", "5"), ("SLURM_NTASKS", "6"), ("SLURM_LOCALID", "1"), ("SLURM_TASKS_PER_NODE", "2(x3)")));
        Assert.Equal(new LaunchEnvironment("pmix", 2, 4, 0, 2),
            Detect(("PMIX_RANK", "2"), ("SLURM_NTASKS", "4"), ("SLURM_LOCALID", "0"), ("SLURM_NTASKS_PER_NODE", "2")));
        Assert.Equal(new LaunchEnvironment("hydra", 1, 2, 1, 2),
            Detect(("PMI_RANK", "1"), ("PMI_SIZE", "2"), ("MPI_LOCALRANKID", "1"), ("MPI_LOCALNRANKS", "2")));
    }

    [Fact]
    public void GarbageIsAUserErrorNamingTheVariable()
    {
        var e = Assert.Throws<UserInputException>(() => Detect(("OMPI_COMM_WORLD_RANK", "x1"), ("OMPI_COMM_WORLD_SIZE", "2")));
        Assert.Contains("OMPI_COMM_WORLD_RANK='x1'", e.Message);
        Assert.Throws<UserInputException>(() => Detect(("OMPI_COMM_WORLD_RANK", "2"), ("OMPI_COMM_WORLD_SIZE", "2")));
    }
}
