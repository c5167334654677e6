using FinQLoRA.Serving;
using Prometheus;

namespace FinQLoRA.Server;

/// <summary>
/// The server's Prometheus metrics (prometheus-net), in a registry of its own so that several servers in one process
/// (tests) do not share counters: our finqlora_* series (named after vLLM's, with our prefix and per-model labels) and
/// vLLM's own series under vLLM's names (<see cref="VllmMetrics"/>).
/// </summary>
public sealed class ServerMetrics : IEngineObserver
{
    private readonly string _baseName;
    private readonly Counter _requests;
    private readonly Counter _promptTokens;
    private readonly Counter _generationTokens;
    private readonly Gauge _queue;
    private readonly Gauge _running;
    private readonly Histogram _ttft;
    private readonly Histogram _perToken;
    private readonly Counter _prefixQueries;
    private readonly Counter _prefixHits;
    private readonly VllmMetrics _vllm;

    public ServerMetrics(string baseModelName)
    {
        _baseName = baseModelName;
        Registry = Metrics.NewCustomRegistry();
        var f = Metrics.WithCustomRegistry(Registry);
        _requests = f.CreateCounter("finqlora_requests_total", "HTTP requests by model and status code.", "model", "status");
        _promptTokens = f.CreateCounter("finqlora_prompt_tokens_total", "Prompt tokens prefilled, by model.", "model");
        _generationTokens = f.CreateCounter("finqlora_generation_tokens_total", "Tokens generated, by model.", "model");
        _queue = f.CreateGauge("finqlora_num_requests_waiting", "Requests waiting for a KV-cache slot.");
        _running = f.CreateGauge("finqlora_num_requests_running", "Sequences in the running batch (KV-cache slots in use).");
        _ttft = f.CreateHistogram("finqlora_time_to_first_token_seconds", "Time from submission to the first generated token.", ["model"],
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.001, 2, 16) });
        _perToken = f.CreateHistogram("finqlora_time_per_output_token_seconds", "Time between two generated tokens of one sequence.", ["model"],
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.0005, 2, 16) });

        _prefixQueries = f.CreateCounter("finqlora_prefix_cache_queries_total", "Prompt tokens looked up in the prefix cache.");
        _prefixHits = f.CreateCounter("finqlora_prefix_cache_hits_total", "Prompt tokens found in the prefix cache (their keys and values were not computed).");
        _vllm = new VllmMetrics(f, baseModelName);
    }

    public CollectorRegistry Registry { get; }

    public void Request(string model, int status) => _requests.WithLabels(model, status.ToString(System.Globalization.CultureInfo.InvariantCulture)).Inc();

    private string Label(string? adapter) => adapter ?? _baseName;

    public void QueueDepth(int waiting)
    {
        _queue.Set(waiting);
        _vllm.Waiting(waiting);
    }

    public void BatchSize(int running)
    {
        _running.Set(running);
        _vllm.Running(running);
    }

    public void FirstToken(string? adapter, TimeSpan sinceSubmit)
    {
        _ttft.WithLabels(Label(adapter)).Observe(sinceSubmit.TotalSeconds);
        _vllm.FirstToken(sinceSubmit);
    }

    public void NextToken(string? adapter, TimeSpan sincePrevious)
    {
        _perToken.WithLabels(Label(adapter)).Observe(sincePrevious.TotalSeconds);
        _vllm.NextToken(sincePrevious);
    }

    public void PrefixCacheQueried(int promptTokens, int hitTokens)
    {
        _prefixQueries.Inc(promptTokens);
        _prefixHits.Inc(hitTokens);
        _vllm.PrefixCacheQueried(promptTokens, hitTokens);
    }

    public void Finished(string? adapter, int promptTokens, int completionTokens)
    {
        _promptTokens.WithLabels(Label(adapter)).Inc(promptTokens);
        _generationTokens.WithLabels(Label(adapter)).Inc(completionTokens);
        _vllm.Finished(promptTokens, completionTokens);
    }

    public void Admitted(string? adapter, TimeSpan queued) => _vllm.Admitted(queued);

    public void RequestLatency(string? adapter, TimeSpan sinceSubmit) => _vllm.RequestLatency(sinceSubmit);

    public void IterationState(double kvCacheUsage, IReadOnlyList<string> runningAdapters, IReadOnlyList<string> waitingAdapters, int maxLoras) =>
        _vllm.IterationState(kvCacheUsage, runningAdapters, waitingAdapters, maxLoras);
}
