using System.Runtime.InteropServices;

namespace FinQLoRA.Cli;

/// <summary>
/// Ctrl-C and SIGTERM for long commands: the first one asks the work to stop at its next safe point (training saves
/// a checkpoint after the optimizer step in progress); a second one aborts at once with the signal's default action.
/// </summary>
internal sealed class Interruption : IDisposable
{
    private readonly CancellationTokenSource _requested = new();
    private readonly PosixSignalRegistration[] _registrations;
    private readonly string _notice;
    private int _signal;

    public Interruption(string notice)
    {
        _notice = notice;
        _registrations = [PosixSignalRegistration.Create(PosixSignal.SIGINT, Handle), PosixSignalRegistration.Create(PosixSignal.SIGTERM, Handle)];
    }

    public CancellationToken Token => _requested.Token;

    /// <summary>128 + the signal number, as a shell reports a process ended by it: 130 for SIGINT, 143 for SIGTERM.</summary>
    public int ExitCode => 128 + (_signal == 0 ? 2 : _signal);

    public string SignalName => _signal == 15 ? "SIGTERM" : "SIGINT";

    private void Handle(PosixSignalContext context)
    {
        if (Interlocked.CompareExchange(ref _signal, context.Signal == PosixSignal.SIGTERM ? 15 : 2, 0) != 0)
        {
            context.Cancel = false; // second signal: let the runtime end the process now
            return;
        }
        context.Cancel = true;
        Console.Error.WriteLine($"{SignalName}: {_notice} (send it again to abort at once)");
        _requested.Cancel();
    }

    public void Dispose()
    {
        foreach (var r in _registrations) r.Dispose();
        _requested.Dispose();
    }
}
