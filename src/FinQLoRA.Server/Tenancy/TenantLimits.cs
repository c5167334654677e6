using System.Threading.RateLimiting;
using FinQLoRA.Server.Common;

namespace FinQLoRA.Server.Tenancy;

/// <summary>
/// Each key's <c>requests_per_minute</c> and <c>tokens_per_minute</c> as token buckets
/// (<see cref="TokenBucketRateLimiter"/>): a bucket holds a minute's worth and refills at the per-minute rate, in
/// steps of at least a tenth of a second. A request takes one request token on arrival; an engine request takes its
/// estimate of tokens at admission (prompt tokens plus max_tokens for every choice, as OpenAI counts): the limit holds
/// for what the key may make the server compute, whatever the model then generates. A refusal is 429
/// <c>rate_limit_exceeded</c> with <c>retry-after</c>: the whole seconds until the bucket holds enough again.
/// </summary>
internal sealed class TenantLimits : IDisposable
{
    private readonly Dictionary<string, (RateLimiter? Requests, RateLimiter? Tokens)> _byId = [];

    public TenantLimits(IEnumerable<TenantKey> keys)
    {
        foreach (var key in keys)
            if (key.RequestsPerMinute is not null || key.TokensPerMinute is not null)
                _byId[key.Id] = (Bucket(key.RequestsPerMinute), Bucket(key.TokensPerMinute));
    }

    /// <summary>Whether the key has a tokens-per-minute limit (an estimate is worth computing).</summary>
    public bool LimitsTokens(TenantKey key) => _byId.TryGetValue(key.Id, out var b) && b.Tokens is not null;

    /// <summary>Takes one of the key's requests for this minute; 429 when none is left.</summary>
    public void AdmitRequest(TenantKey key)
    {
        if (!_byId.TryGetValue(key.Id, out var b) || b.Requests is null) return;
        Take(b.Requests, 1, key.RequestsPerMinute!.Value, $"API key '{key.Id}' reached its limit of {key.RequestsPerMinute} requests per minute");
    }

    /// <summary>Takes <paramref name="tokens"/> (the admission estimate) from the key's tokens for this minute; 429 when
    /// fewer are left, or when the estimate alone is over the key's whole minute.</summary>
    public void AdmitTokens(TenantKey key, long tokens)
    {
        if (!_byId.TryGetValue(key.Id, out var b) || b.Tokens is null || tokens <= 0) return;
        int limit = key.TokensPerMinute!.Value;
        if (tokens > limit)
            throw new ApiException(429, $"this request needs an estimated {tokens} tokens (prompt plus max_tokens for every choice), more than API key '{key.Id}''s limit of {limit} tokens per minute; lower max_tokens or n", null, "rate_limit_exceeded")
            { RetryAfterSeconds = 60 };
        Take(b.Tokens, (int)tokens, limit, $"API key '{key.Id}' reached its limit of {limit} tokens per minute (this request needs an estimated {tokens}: prompt plus max_tokens for every choice)");
    }

    private static void Take(RateLimiter bucket, int count, int perMinute, string message)
    {
        using var lease = bucket.AttemptAcquire(count);
        if (lease.IsAcquired) return;
        // what the bucket lacks, at the refill rate; the lease's own estimate where it gives a longer one
        long available = bucket.GetStatistics()?.CurrentAvailablePermits ?? 0;
        double seconds = Math.Max(0, count - available) * 60.0 / perMinute;
        if (lease.TryGetMetadata(MetadataName.RetryAfter, out TimeSpan after)) seconds = Math.Max(seconds, after.TotalSeconds);
        int retry = (int)Math.Max(1, Math.Ceiling(seconds));
        throw new ApiException(429, $"{message}; retry after {retry} s", null, "rate_limit_exceeded") { RetryAfterSeconds = retry };
    }

    /// <summary>A bucket of <paramref name="perMinute"/> tokens refilled at that rate: k tokens every 60 s·k/N, k chosen
    /// so that the step is at least 100 ms (a timer per key, not one per token).</summary>
    private static TokenBucketRateLimiter? Bucket(int? perMinute)
    {
        if (perMinute is not int n) return null;
        int k = Math.Max(1, n / 600);
        return new TokenBucketRateLimiter(new TokenBucketRateLimiterOptions
        {
            TokenLimit = n,
            TokensPerPeriod = k,
            ReplenishmentPeriod = TimeSpan.FromTicks(TimeSpan.FromMinutes(1).Ticks * k / n),
            AutoReplenishment = true,
            QueueLimit = 0,
        });
    }

    public void Dispose()
    {
        foreach (var (requests, tokens) in _byId.Values)
        {
            requests?.Dispose();
            tokens?.Dispose();
        }
    }
}
