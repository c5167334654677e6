using Microsoft.Extensions.Hosting;

namespace FinQLoRA.Server;

/// <summary>A host lifetime that listens for no signals: the process that hosts the server handles Ctrl-C and
/// SIGTERM itself, so that the listeners stay open (answering 503) while running requests finish.</summary>
internal sealed class HostLifetimeWithoutSignals : IHostLifetime
{
    public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
