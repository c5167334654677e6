using FinQLoRA.Models;
using FinQLoRA.Serving;
using FinQLoRA.Loading;

namespace FinQLoRA.Server;

/// <summary>Everything <see cref="ServerHost.Open"/> needs to serve a checkpoint: where the model is and how it loads
/// (dtype, device, quantized bits), the adapters loaded at start, how the server listens and what it allows, and the
/// engine's sizes.</summary>
public sealed record ServerHostOptions
{
    /// <summary>An HF model folder or a .gguf file.</summary>
    public required string ModelPath { get; init; }
    /// <summary>Compute dtype, device and the quantization of the base as it loads (the CLI's --bits).</summary>
    public ModelLoadOptions Load { get; init; } = new();
    /// <summary>PEFT adapter folders served under their names from the start (read when first requested).</summary>
    public IReadOnlyList<(string Name, string Dir)> Adapters { get; init; } = [];
    /// <summary>Names among <see cref="Adapters"/> that are read at start and never leave the device (<c>--adapter NAME=DIR:pin</c>).</summary>
    public IReadOnlyList<string> PinnedAdapters { get; init; } = [];
    /// <summary>Adapters on the compute device at once (the CLI's --max-loras).</summary>
    public int MaxLoras { get; init; } = EngineOptions.DefaultMaxLoras;
    /// <summary>Adapters kept in host memory after leaving the device (the CLI's --max-cpu-loras); null: <see cref="MaxLoras"/>.</summary>
    public int? MaxCpuLoras { get; init; }
    /// <summary>Served name, host and port, API key, adapter root, limits; its chat format is detected by Open.</summary>
    public required ServerOptions Server { get; init; }
    /// <summary>Sequences decoded together (KV-cache slots).</summary>
    public int MaxBatch { get; init; } = new EngineOptions().MaxBatch;
    /// <summary>Requests that may wait for a slot; one more is refused (429).</summary>
    public int MaxQueue { get; init; } = new EngineOptions().MaxQueue;
    /// <summary>Prompt plus generated tokens per sequence; null: the model's context, at most <see cref="DefaultMaxModelLen"/>.</summary>
    public int? MaxModelLen { get; init; }
    /// <summary>Memory for the prefix cache's block pool in GiB (the CLI's --prefix-cache-gib); 0 turns prefix caching off.</summary>
    public double PrefixCacheGib { get; init; } = DefaultPrefixCacheGib;
    /// <summary>The order waiting requests are admitted in (the CLI's --scheduling-policy).</summary>
    public SchedulingPolicy SchedulingPolicy { get; init; } = SchedulingPolicy.Fcfs;

    /// <summary>Ranks the model's layers are split over (the CLI's --pipeline-stages; 1: one process). Rank 0 serves
    /// HTTP; the others run <see cref="Serving.Pipeline.PipelineStageWorker"/>.</summary>
    public int PipelineStages { get; init; } = 1;
    /// <summary>Micro-batches a pipeline step's rows are cut into (the CLI's --micro-batches); null: one per stage.</summary>
    public int? MicroBatches { get; init; }

    /// <summary>The prefix cache a server gets without --prefix-cache-gib.</summary>
    public const double DefaultPrefixCacheGib = 1;

    /// <summary>Refuses a pool size that is negative or not a number, naming the flag.</summary>
    public static void CheckPrefixCacheGib(double gib)
    {
        if (double.IsNaN(gib) || double.IsInfinity(gib) || gib < 0)
            throw new UserInputException($"--prefix-cache-gib must be a number of GiB >= 0 (got {gib}); 0 turns prefix caching off");
    }

    /// <summary>Refuses slot counts that cannot serve and more pins than the device holds (or every slot pinned while
    /// other adapters are served: those could never run), naming the flag and the fix.</summary>
    public static void CheckAdapterSlots(int maxLoras, int? maxCpuLoras, int pins, bool othersServed)
    {
        if (maxLoras < 1) throw new UserInputException($"--max-loras must be at least 1 (got {maxLoras}): an adapter must be on the device to serve a request");
        if (maxCpuLoras is < 0) throw new UserInputException($"--max-cpu-loras must be at least 0 (got {maxCpuLoras}); 0 keeps no adapter in host memory after it leaves the device");
        if (pins > maxLoras)
            throw new UserInputException($"--adapter ...:pin pins {pins} adapters but --max-loras {maxLoras} holds only {maxLoras} on the device; raise --max-loras or pin fewer");
        if (pins == maxLoras && othersServed)
            throw new UserInputException($"--adapter ...:pin pins {pins} adapters, every slot of --max-loras {maxLoras}, so the unpinned adapters could never run; raise --max-loras or pin fewer");
    }

    /// <summary>The context a server gets without --max-model-len: a KV pool of MaxBatch slots this long is allocated at start.</summary>
    public const int DefaultMaxModelLen = 4096;
}
