using TorchSharp;

namespace FinQLoRA.Distributed;

/// <summary>
/// Where this process stands in a job, decided from the launcher's environment: its rank, its device and the
/// communicator to use for tensors on that device.
/// <list type="bullet">
/// <item>Not launched (no <c>OMPI_COMM_WORLD_RANK</c>, <c>PMIX_RANK</c>, <c>SLURM_PROCID</c>, <c>PMI_RANK</c>):
/// <see cref="SingleProcessCommunicator"/>.</item>
/// <item>Launched, CPU: <see cref="MpiCommunicator"/>, and libtorch gets <c>max(1, cores / ranks on this machine)</c>
/// threads so the ranks do not oversubscribe the cores.</item>
/// <item>Launched, CUDA available: device <c>cuda:&lt;local rank&gt;</c> and <see cref="NcclCommunicator"/>
/// (bootstrapped over MPI); <c>FINQLORA_COMM_BACKEND=mpi</c> stages GPU tensors through host memory instead.</item>
/// </list>
/// Dispose it at the end of the job on every rank (it finalises MPI).
/// </summary>
public sealed class DistributedContext : IDisposable
{
    /// <summary>"auto" (default), "mpi" or "nccl".</summary>
    public const string BackendVariable = "FINQLORA_COMM_BACKEND";

    private DistributedContext(LaunchEnvironment launch, ICommunicator communicator, torch.Device device)
    {
        Launch = launch;
        Communicator = communicator;
        Device = device;
    }

    public LaunchEnvironment Launch { get; }
    public ICommunicator Communicator { get; }

    /// <summary>The device this rank computes on.</summary>
    public torch.Device Device { get; }

    public int Rank => Communicator.Rank;
    public int Size => Communicator.Size;
    public int LocalRank => Communicator.LocalRank;

    /// <summary>Rank 0: the one that logs and writes files.</summary>
    public bool IsMain => Rank == 0;

    public static DistributedContext FromEnvironment() =>
        Create(LaunchEnvironment.FromEnvironment(), torch.cuda.is_available(), Environment.GetEnvironmentVariable(BackendVariable));

    internal static DistributedContext Create(LaunchEnvironment launch, bool cudaAvailable, string? backend)
    {
        backend = string.IsNullOrWhiteSpace(backend) ? "auto" : backend.Trim().ToLowerInvariant();
        if (backend is not ("auto" or "mpi" or "nccl"))
            throw new UserInputException($"{BackendVariable}='{backend}' is not a communication backend; use auto, mpi or nccl");

        torch.Device device = cudaAvailable ? new torch.Device(DeviceType.CUDA, launch.LocalRank) : torch.CPU;
        if (!cudaAvailable)
            torch.set_num_threads(Math.Max(1, Environment.ProcessorCount / Math.Max(1, launch.LocalSize)));
        if (!launch.IsLaunched)
            return new DistributedContext(launch, new SingleProcessCommunicator(), device);

        ICommunicator mpi = MpiCommunicator.Initialize(launch.LocalRank);
        bool useNccl = backend == "nccl" || (backend == "auto" && cudaAvailable);
        if (!useNccl) return new DistributedContext(launch, mpi, device);
        try
        {
            return new DistributedContext(launch, NcclCommunicator.Create(mpi), device);
        }
        catch
        {
            mpi.Dispose();
            throw;
        }
    }

    public void Dispose() => Communicator.Dispose();
}
