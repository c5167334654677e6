namespace FinQLoRA.Serving;

/// <summary>Sizes of the serving engine. The KV pool holds <see cref="MaxBatch"/> slots of <see cref="MaxModelLen"/>
/// positions each, allocated once at start.</summary>
public sealed record EngineOptions
{
    /// <summary>Sequences decoded together (KV-cache slots).</summary>
    public int MaxBatch { get; init; } = 32;
    /// <summary>Requests that may wait for a slot; one more is refused (HTTP 429).</summary>
    public int MaxQueue { get; init; } = 256;
    /// <summary>Prompt plus generated tokens per sequence.</summary>
    public int MaxModelLen { get; init; } = 2048;
    /// <summary>Prompt tokens prefilled between two decode steps (at least one prompt is always taken), so that
    /// newcomers join quickly without stalling the running streams for long.</summary>
    public int PrefillTokensPerStep { get; init; } = 1024;
    /// <summary>Memory for the prefix cache's block pool (keys and values of every layer); 0 turns prefix caching off.</summary>
    public long PrefixCacheBytes { get; init; }
    /// <summary>Tokens per prefix-cache block: a prompt's prefix is reused in whole blocks (vLLM's default, 16).</summary>
    public int PrefixBlockTokens { get; init; } = 16;
    /// <summary>The order waiting requests are admitted in; with <see cref="SchedulingPolicy.Fcfs"/> a request's
    /// priority must be 0.</summary>
    public SchedulingPolicy SchedulingPolicy { get; init; } = SchedulingPolicy.Fcfs;
    /// <summary>Adapters on the compute device at once (stack indices of every LoRA projection; vLLM's <c>max_loras</c>,
    /// reported as the <c>max_lora</c> label of <c>vllm:lora_requests_info</c>); the others wait in
    /// host memory or on disk and come on when a request needs them, the least recently used idle one leaving.</summary>
    public int MaxLoras { get; init; } = DefaultMaxLoras;
    /// <summary>Adapters kept in host memory after leaving the device (and not waited for), so that coming back reads no
    /// disk; null: <see cref="MaxLoras"/>, as vLLM's <c>--max-cpu-loras</c>.</summary>
    public int? MaxCpuLoras { get; init; }

    /// <summary>The device holds this many adapters without <c>--max-loras</c> (vLLM's default is 1; a bank's desk mix
    /// needs more, and an index costs only its adapter's size).</summary>
    public const int DefaultMaxLoras = 8;

    public void Validate(int modelContext)
    {
        if (MaxBatch < 1) throw UserInputException.About($"{new ConfigField("max_batch")} must be at least 1 (got {MaxBatch})");
        if (MaxQueue < 0) throw UserInputException.About($"{new ConfigField("max_queue")} must be at least 0 (got {MaxQueue})");
        if (MaxModelLen < 2) throw UserInputException.About($"{new ConfigField("max_model_len")} must be at least 2 (got {MaxModelLen})");
        if (MaxModelLen > modelContext)
            throw UserInputException.About($"{new ConfigField("max_model_len")} {MaxModelLen} exceeds the model's context of {modelContext} (max_position_embeddings); lower it");
        if (PrefillTokensPerStep < 1) throw new UserInputException($"prefill tokens per step must be at least 1 (got {PrefillTokensPerStep})");
        if (PrefixCacheBytes < 0) throw UserInputException.About($"{new ConfigField("prefix_cache_gib")} must be at least 0 (got {PrefixCacheBytes} bytes)");
        if (PrefixBlockTokens < 1) throw new UserInputException($"prefix cache block tokens must be at least 1 (got {PrefixBlockTokens})");
        CheckAdapterSlots(MaxLoras, MaxCpuLoras);
    }

    /// <summary>Refuses adapter slot counts that cannot serve, naming the flag (also checked by the CLI before any work).</summary>
    public static void CheckAdapterSlots(int maxLoras, int? maxCpuLoras)
    {
        if (maxLoras < 1) throw UserInputException.About($"{new ConfigField("max_loras")} must be at least 1 (got {maxLoras}): an adapter must be on the device to serve a request");
        if (maxCpuLoras is < 0) throw UserInputException.About($"{new ConfigField("max_cpu_loras")} must be at least 0 (got {maxCpuLoras}); 0 keeps no adapter in host memory after it leaves the device");
    }
}
