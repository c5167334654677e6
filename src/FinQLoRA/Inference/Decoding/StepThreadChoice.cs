using System.Diagnostics;

namespace FinQLoRA.Inference.Decoding;

/// <summary>
/// How many threads the next managed step runs on, by measurement. The threaded step meets ~4 times per layer at a
/// barrier, so each helper thread must hold a core the whole step: on an idle machine that pays (the split products),
/// but on a busy one a helper waits for a core at every barrier, and on this project's 2-core machine under other
/// builds the 2-thread step of the 76M 4-bit model ran at 0.33x the libtorch step where the 1-thread one ran at 2.3x.
/// Both counts are timed, the faster one runs (its time an average of its recent steps), and every <see cref="Probe"/>-th
/// step runs the other, whose time that one step replaces (the old one is stale), so that a machine that gets busy or
/// idle is noticed within a probe. The count never changes a result
/// (<see cref="SingleTokenDecoder"/> computes every row the same way on any thread).
/// </summary>
internal sealed class StepThreadChoice(int most)
{
    private const int Probe = 16;
    private const double Weight = 0.25; // of the newest step in a count's average
    private double _single, _threaded; // seconds per step, 0 until measured
    private long _steps;
    private int _last;

    public int Threads
    {
        get
        {
            if (most <= 1) return 1;
            if (_threaded == 0) return most;
            if (_single == 0) return 1;
            int faster = _threaded <= _single ? most : 1;
            return _steps % Probe == Probe - 1 ? (faster == 1 ? most : 1) : faster;
        }
    }

    /// <summary>Records a step of <paramref name="threads"/> that took <paramref name="ticks"/> (<see cref="Stopwatch"/> ticks).</summary>
    public void Record(int threads, long ticks)
    {
        _steps++;
        double seconds = (double)ticks / Stopwatch.Frequency;
        ref double average = ref threads == 1 ? ref _single : ref _threaded;
        average = average == 0 || threads != _last ? seconds : (1 - Weight) * average + Weight * seconds;
        _last = threads;
    }
}
