using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.ExceptionServices;

namespace FinQLoRA.Hub;

/// <summary>
/// Counts failed attempts at one request and waits between them (see <see cref="HubRetryPolicy"/>).
/// Only network trouble is retried: refused connections, cut connections, silence past the idle timeout and
/// busy-server statuses. A refusal (401, 404 ...) or a local disk error is thrown at once.
/// </summary>
internal sealed class RetryLoop(HubSettings settings, IHubTransferObserver? observer, string what, Uri url)
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private int _failuresInARow;
    private int _attempts;

    /// <summary>Bytes arrived: the link works, so earlier failures no longer count against the limit.</summary>
    public void Progressed() => _failuresInARow = 0;

    public void Attempting() => _attempts++;

    public static bool IsTransient(Exception e, CancellationToken cancellation) =>
        e is HubTransientException or HttpRequestException or HttpIOException or TimeoutException
        || (e is IOException && e.InnerException is SocketException)
        || (e is OperationCanceledException && !cancellation.IsCancellationRequested);

    /// <summary>Waits before the next attempt, or throws when the failure is permanent or attempts are used up.</summary>
    public async Task FailedAsync(Exception e, CancellationToken cancellation)
    {
        if (!IsTransient(e, cancellation)) ExceptionDispatchInfo.Throw(e);
        _failuresInARow++;
        string reason = e.InnerException is { } inner && e is HttpRequestException ? $"{e.Message} {inner.Message}" : e.Message;
        if (_failuresInARow >= settings.Retry.MaxAttempts)
            throw HubErrors.Unreachable(url, _attempts, _clock.Elapsed, reason, settings);
        TimeSpan delay = settings.Retry.DelayAfter(_failuresInARow);
        observer?.Retrying(what, _failuresInARow, delay, HubErrors.OneLine(reason));
        await Task.Delay(delay, cancellation);
    }
}
