using Prometheus;

namespace FinQLoRA.Server;

/// <summary>
/// vLLM's series (v1 engine, <c>vllm/v1/metrics/loggers.py</c>), under vLLM's names, labels, meanings and histogram
/// buckets, so that the Gateway API Inference Extension and dashboards made for vLLM read this server unchanged. Every
/// series but <c>vllm:lora_requests_info</c> carries vLLM's <c>model_name</c> (the served base name, for adapter requests
/// too) and <c>engine</c> ("0": one engine core) labels.
/// prometheus-net 8 refuses ':' in a name (its rule is <c>[a-zA-Z_][a-zA-Z0-9_]*</c>; Prometheus's own allows colons, and
/// vLLM uses them), so these are registered as <c>vllm_…</c> and renamed where /metrics writes them
/// (<see cref="MetricsText"/>).
/// </summary>
internal sealed class VllmMetrics
{
    /// <summary>The prefix the series are registered under, and the one they are exposed under.</summary>
    public const string RegisteredPrefix = "vllm_", ExposedPrefix = "vllm:";

    // vLLM's bucket boundaries, in seconds
    private static readonly double[] TimeToFirstTokenBuckets =
        [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0];
    private static readonly double[] InterTokenBuckets =
        [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0];
    private static readonly double[] RequestLatencyBuckets =
        [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0];

    private readonly Gauge.Child _running, _waiting, _kvCacheUsage;
    private readonly Counter.Child _promptTokens, _generationTokens, _prefixQueries, _prefixHits;
    private readonly Histogram.Child _timeToFirstToken, _interToken, _e2e, _queueTime;
    private readonly Gauge _loraInfo;
    private readonly object _loraLock = new();
    private string[]? _loraLabels; // guarded by _loraLock

    public VllmMetrics(MetricFactory f, string servedModelName)
    {
        string[] labels = ["model_name", "engine"];
        string[] values = [servedModelName, "0"];
        Gauge.Child Gauge(string name, string help) => f.CreateGauge(RegisteredPrefix + name, help, labels).WithLabels(values);
        Counter.Child Counter(string name, string help) => f.CreateCounter(RegisteredPrefix + name, help, labels).WithLabels(values);
        Histogram.Child Histogram(string name, string help, double[] buckets) =>
            f.CreateHistogram(RegisteredPrefix + name, help, labels, new HistogramConfiguration { Buckets = buckets }).WithLabels(values);

        _running = Gauge("num_requests_running", "Number of requests in model execution batches.");
        _waiting = Gauge("num_requests_waiting", "Number of requests waiting to be processed.");
        _kvCacheUsage = Gauge("kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.");
        _promptTokens = Counter("prompt_tokens_total", "Number of prefill tokens processed.");
        _generationTokens = Counter("generation_tokens_total", "Number of generation tokens processed.");
        _prefixQueries = Counter("prefix_cache_queries_total", "Prefix cache queries, in terms of number of queried tokens.");
        _prefixHits = Counter("prefix_cache_hits_total", "Prefix cache hits, in terms of number of cached tokens.");
        _timeToFirstToken = Histogram("time_to_first_token_seconds", "Histogram of time to first token in seconds.", TimeToFirstTokenBuckets);
        _interToken = Histogram("inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", InterTokenBuckets);
        _e2e = Histogram("e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", RequestLatencyBuckets);
        _queueTime = Histogram("request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", RequestLatencyBuckets);
        _loraInfo = f.CreateGauge(RegisteredPrefix + "lora_requests_info", "Running stats on lora requests.",
            "max_lora", "waiting_lora_adapters", "running_lora_adapters");
    }

    public void Running(int running) => _running.Set(running);
    public void Waiting(int waiting) => _waiting.Set(waiting);
    public void FirstToken(TimeSpan sinceSubmit) => _timeToFirstToken.Observe(sinceSubmit.TotalSeconds);
    public void NextToken(TimeSpan sincePrevious) => _interToken.Observe(sincePrevious.TotalSeconds);
    public void Admitted(TimeSpan queued) => _queueTime.Observe(queued.TotalSeconds);
    public void RequestLatency(TimeSpan sinceSubmit) => _e2e.Observe(sinceSubmit.TotalSeconds);

    public void Finished(int promptTokens, int completionTokens)
    {
        _promptTokens.Inc(promptTokens);
        _generationTokens.Inc(completionTokens);
    }

    public void PrefixCacheQueried(int promptTokens, int hitTokens)
    {
        _prefixQueries.Inc(promptTokens);
        _prefixHits.Inc(hitTokens);
    }

    /// <summary>vLLM sets <c>lora_requests_info</c> to the current time under the labels of this iteration's adapters,
    /// and a reader (the inference extension) takes the series with the newest value. vLLM keeps every label set it
    /// ever wrote; here the previous one is removed when the adapters change, so the newest series is the only one and
    /// the label sets cannot pile up.</summary>
    public void IterationState(double kvCacheUsage, IReadOnlyList<string> running, IReadOnlyList<string> waiting, int maxLoras)
    {
        _kvCacheUsage.Set(kvCacheUsage);
        string[] labels = [maxLoras.ToString(System.Globalization.CultureInfo.InvariantCulture), string.Join(',', waiting), string.Join(',', running)];
        lock (_loraLock)
        {
            if (_loraLabels is { } previous && !previous.SequenceEqual(labels)) _loraInfo.WithLabels(previous).Remove();
            _loraLabels = labels;
            _loraInfo.WithLabels(labels).SetToCurrentTimeUtc();
        }
    }
}
