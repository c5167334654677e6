using System.Diagnostics;

namespace FinQLoRA.Models;

/// <summary>
/// A barrier for the few threads of one decode step, whose phases last microseconds to milliseconds. A waiter spins,
/// then yields its core, but never sleeps on a kernel object: <see cref="Barrier"/> blocks after a short spin, and a
/// step meets ~80 times per token, each wake-up of a blocked thread a trip through the kernel. After
/// <see cref="SpinFor"/> a waiter yields between checks, so a busy machine gets the core back.
/// </summary>
internal sealed class SpinningBarrier(int participants)
{
    private static readonly long SpinFor = Stopwatch.Frequency / 5000; // 200 µs
    private int _arrived;
    private volatile int _phase;

    public void SignalAndWait()
    {
        int phase = _phase;
        if (Interlocked.Increment(ref _arrived) == participants)
        {
            _arrived = 0;
            _phase = phase + 1; // volatile write: everything before it is visible to the waiters that see the new phase
            return;
        }
        long start = Stopwatch.GetTimestamp();
        while (_phase == phase)
        {
            if (Stopwatch.GetTimestamp() - start < SpinFor) Thread.SpinWait(16);
            else Thread.Yield();
        }
    }
}
