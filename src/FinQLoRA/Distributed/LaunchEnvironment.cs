using System.Globalization;

namespace FinQLoRA.Distributed;

/// <summary>
/// What the launcher told this process through its environment, read before MPI is initialised (so the GPU and
/// thread count can be chosen first). Recognised, in order: Open MPI's <c>mpirun</c>
/// (<c>OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK/LOCAL_SIZE</c>), PMIx (<c>PMIX_RANK</c>, with sizes from Slurm or
/// <c>PMI_SIZE</c>), Slurm's <c>srun</c> (<c>SLURM_PROCID</c>, <c>SLURM_NTASKS</c>, <c>SLURM_LOCALID</c>,
/// <c>SLURM_NTASKS_PER_NODE</c>/<c>SLURM_TASKS_PER_NODE</c>) and MPICH's Hydra (<c>PMI_RANK</c>, <c>PMI_SIZE</c>,
/// <c>MPI_LOCALRANKID</c>, <c>MPI_LOCALNRANKS</c>).
/// </summary>
/// <param name="Launcher">"none", "openmpi", "pmix", "slurm" or "hydra".</param>
public sealed record LaunchEnvironment(string Launcher, int Rank, int Size, int LocalRank, int LocalSize)
{
    /// <summary>True when some launcher started this process (even with one rank): MPI should be initialised.</summary>
    public bool IsLaunched => Launcher != "none";

    public static LaunchEnvironment Single { get; } = new("none", 0, 1, 0, 1);

    public static LaunchEnvironment FromEnvironment() => Detect(Environment.GetEnvironmentVariable);

    /// <summary>Reads the variables through <paramref name="get"/> (testable without touching the process environment).</summary>
    public static LaunchEnvironment Detect(Func<string, string?> get)
    {
        if (get("OMPI_COMM_WORLD_RANK") is not null)
            return Build("openmpi", get, "OMPI_COMM_WORLD_RANK", ["OMPI_COMM_WORLD_SIZE"], ["OMPI_COMM_WORLD_LOCAL_RANK"], ["OMPI_COMM_WORLD_LOCAL_SIZE"]);
        if (get("PMIX_RANK") is not null)
            return Build("pmix", get, "PMIX_RANK", ["SLURM_NTASKS", "PMI_SIZE"], ["SLURM_LOCALID", "MPI_LOCALRANKID"], ["SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE", "MPI_LOCALNRANKS"]);
        if (get("SLURM_PROCID") is not null && get("SLURM_NTASKS") is not null)
            return Build("slurm", get, "SLURM_PROCID", ["SLURM_NTASKS"], ["SLURM_LOCALID"], ["SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE"]);
        if (get("PMI_RANK") is not null)
            return Build("hydra", get, "PMI_RANK", ["PMI_SIZE"], ["MPI_LOCALRANKID"], ["MPI_LOCALNRANKS"]);
        return Single;
    }

    private static LaunchEnvironment Build(string launcher, Func<string, string?> get, string rankVariable, string[] sizeVariables, string[] localRankVariables, string[] localSizeVariables)
    {
        int rank = Parse(rankVariable, get(rankVariable)!, minimum: 0);
        int size = First(get, sizeVariables, minimum: 1) ?? rank + 1; // unknown: at least rank+1; MPI reports the truth after init
        int localRank = First(get, localRankVariables, minimum: 0) ?? 0;
        int localSize = First(get, localSizeVariables, minimum: 1) ?? 1;
        if (rank >= size) throw new UserInputException($"{rankVariable}={rank} is not below the job size {size} ({string.Join("/", sizeVariables)}); the launcher environment is inconsistent");
        return new LaunchEnvironment(launcher, rank, size, localRank, Math.Max(localSize, localRank + 1));
    }

    private static int? First(Func<string, string?> get, string[] variables, int minimum)
    {
        foreach (string variable in variables)
            if (get(variable) is { Length: > 0 } value) return Parse(variable, value, minimum);
        return null;
    }

    /// <summary>Parses a count; Slurm's per-node lists such as "2(x3),1" give their first number.</summary>
    private static int Parse(string variable, string value, int minimum)
    {
        string head = variable.EndsWith("TASKS_PER_NODE", StringComparison.Ordinal) ? new(value.TakeWhile(char.IsAsciiDigit).ToArray()) : value;
        if (head.Length > 0 && int.TryParse(head, NumberStyles.None, CultureInfo.InvariantCulture, out int number) && number >= minimum)
            return number;
        throw new UserInputException($"environment variable {variable}='{value}' is not an integer ≥ {minimum}; it is set by the MPI/Slurm launcher, so unset it when not running under one");
    }
}
