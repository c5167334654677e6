using FinQLoRA.Distributed;
using FinQLoRA.MpiHost;
using FinQLoRA.Runtime;

// Usage: mpirun -np 2 FinQLoRA.MpiHost <scenario> [scenario arguments]. Exit code 0 and "R<rank> done" when the scenario completed.
TorchNativeLoader.EnsureLoaded();
if (args.Length < 1 || args[0] != "pipeline" && args.Length != 1 || args[0] == "pipeline" && args.Length != 6)
{
    Console.Error.WriteLine("usage: FinQLoRA.MpiHost collectives|reducers|private-noise|killed|exited|stalled | pipeline <model> <f32|bf16> <new-tokens> <micro-batch counts> <prompt ids>");
    return 2;
}
using var context = DistributedContext.FromEnvironment();
ICommunicator comm = context.Communicator;
switch (args[0])
{
    case "collectives": CollectiveScenarios.Run(comm); break;
    case "reducers": ReducerScenarios.Run(comm); break;
    case "killed": FailureScenarios.Killed(comm); break;
    case "exited": FailureScenarios.Exited(comm); break;
    case "stalled": FailureScenarios.Stalled(comm); break;
    case "pipeline": PipelineScenarios.Run(comm, args[1..]); break;
    case "private-noise": PrivateStepScenarios.Noise(comm); break;
    default:
        Console.Error.WriteLine($"unknown scenario '{args[0]}'");
        return 2;
}
Console.WriteLine($"R{comm.Rank} done");
return 0;
