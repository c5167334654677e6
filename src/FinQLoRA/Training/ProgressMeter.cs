using System.Diagnostics;
using FinQLoRA.Distributed;
using FinQLoRA.Runtime;

namespace FinQLoRA.Training;

/// <summary>Throughput, ETA, memory and network traffic of the training loop, for its progress lines.</summary>
public sealed class ProgressMeter(ICommunicator comm, int startStep)
{
    private readonly Stopwatch _timer = Stopwatch.StartNew();
    private readonly int _startStep = startStep;
    private long _commBytesAtLastLine = comm.BytesSent;
    private int _stepAtLastLine = startStep;

    /// <summary>Tokens trained on since the run (or its resumption) started.</summary>
    public long TokensSeen { get; private set; }

    public double Seconds => _timer.Elapsed.TotalSeconds;

    public void Count(long tokens) => TokensSeen += tokens;

    /// <summary>The line after <paramref name="step"/>; <paramref name="epoch"/> counts fractions of an epoch.</summary>
    public MetricsLine Line(int step, int totalSteps, double epoch, double loss, double lr)
    {
        double elapsed = Seconds;
        double tokPerSec = TokensSeen / Math.Max(elapsed, 1e-9);
        // Bytes rank 0 handed to the network per optimizer step since the previous line (all collectives).
        long commBytes = (comm.BytesSent - _commBytesAtLastLine) / Math.Max(1, step - _stepAtLastLine);
        (_commBytesAtLastLine, _stepAtLastLine) = (comm.BytesSent, step);
        double eta = (totalSteps - step) * elapsed / Math.Max(1, step - _startStep);
        return new MetricsLine(step, totalSteps, epoch, loss, lr, tokPerSec, eta, MemoryUsage.CurrentRssBytes, commBytes);
    }
}
