namespace FinQLoRA.Serving;

/// <summary>What the scheduler reports as it runs (the server turns it into Prometheus metrics). Called on the
/// scheduler thread: implementations must be quick and thread-safe. <c>adapter</c> null is the base.</summary>
public interface IEngineObserver
{
    void QueueDepth(int waiting);
    void BatchSize(int running);
    void FirstToken(string? adapter, TimeSpan sinceSubmit);
    void NextToken(string? adapter, TimeSpan sincePrevious);
    void Finished(string? adapter, int promptTokens, int completionTokens);
    /// <summary>A prompt of <paramref name="promptTokens"/> looked up in the prefix cache, <paramref name="hitTokens"/>
    /// of them found (vLLM's prefix_cache_queries and prefix_cache_hits).</summary>
    void PrefixCacheQueried(int promptTokens, int hitTokens) { }
    /// <summary>A request left the waiting queue for a KV slot after <paramref name="queued"/> (vLLM's queue time).</summary>
    void Admitted(string? adapter, TimeSpan queued) { }
    /// <summary>A request finished, <paramref name="sinceSubmit"/> after it was submitted (vLLM's e2e latency).</summary>
    void RequestLatency(string? adapter, TimeSpan sinceSubmit) { }
    /// <summary>After each scheduler iteration: the fraction of KV-cache slots held by running requests (0..1; a slot
    /// reserves a whole sequence's positions, so slots are what runs out) and the adapters of the running and the
    /// waiting requests (sorted, the base left out) with the most that may be resident at once.</summary>
    void IterationState(double kvCacheUsage, IReadOnlyList<string> runningAdapters, IReadOnlyList<string> waitingAdapters, int maxLoras) { }
}
