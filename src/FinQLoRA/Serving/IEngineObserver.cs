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
}
