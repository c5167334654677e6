namespace FinQLoRA.Planning;

/// <summary>Where a planned run executes: GPU memory (CUDA) or the process's resident set on the CPU.</summary>
public enum MemoryDevice
{
    /// <summary>GPU memory: a CUDA context plus tensors; the host process is not counted.</summary>
    Cuda,
    /// <summary>Peak RSS of the whole process: .NET + libtorch runtime plus tensors in host memory.</summary>
    Cpu,
}
