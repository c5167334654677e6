using TorchSharp;

namespace FinQLoRA.Runtime.DeviceMemory;

/// <summary>
/// The peak memory a process uses on its device while the probe runs, above what was in use when it started.
/// <list type="bullet">
/// <item>CUDA: NVML's memory in use on the GPU (<see cref="Nvml"/>), sampled every millisecond on a thread of its own
/// and once more at <see cref="Stop"/>. Start it before the process's first CUDA call: the figure then includes the CUDA
/// context and everything libtorch's caching allocator reserved, which is PyTorch's <c>max_memory_reserved</c> plus the
/// context, so at least <c>max_memory_allocated</c> (allocations are rounded up to the allocator's blocks and freed
/// blocks stay cached; TorchSharp cannot empty the cache, so one configuration per process). It counts the whole GPU:
/// run nothing else on it.</item>
/// <item>CPU: the process's peak RSS (VmHWM, reset at the start where the kernel allows it) above its RSS then.</item>
/// </list>
/// </summary>
public sealed class PeakMemoryProbe : IDisposable
{
    private readonly nint _nvml;
    private readonly Thread? _sampler;
    private volatile bool _stop;
    private long _peak;

    private PeakMemoryProbe(string source, long baseline, nint nvml)
    {
        Source = source;
        BaselineBytes = baseline;
        _peak = baseline;
        _nvml = nvml;
        if (nvml != 0)
        {
            _sampler = new Thread(Sample) { IsBackground = true, Name = "nvml-memory-sampler" };
            _sampler.Start();
        }
    }

    /// <summary>Where the figures come from, for the report: "NVML, GPU 0 (whole device)" or "VmHWM".</summary>
    public string Source { get; }

    /// <summary>Memory in use when the probe started (all of the GPU's, or this process's RSS).</summary>
    public long BaselineBytes { get; }

    /// <summary>The highest reading so far (this one included), above <see cref="BaselineBytes"/>.</summary>
    public long PeakAboveBaselineBytes
    {
        get
        {
            Observe(Current());
            return Math.Max(0, Interlocked.Read(ref _peak) - BaselineBytes);
        }
    }

    /// <summary>Starts measuring <paramref name="device"/>; for a GPU that NVML cannot read, the reason is thrown.</summary>
    public static PeakMemoryProbe Start(torch.Device device)
    {
        if (device.type != DeviceType.CUDA)
        {
            bool reset = ResetPeakRss();
            return new PeakMemoryProbe(reset ? "VmHWM (peak RSS)" : "VmHWM (peak RSS; not reset, includes the process's earlier peak)",
                reset ? MemoryUsage.CurrentRssBytes : MemoryUsage.PeakRssBytes, 0);
        }
        uint index = NvmlIndex(device.index < 0 ? 0 : device.index);
        var (handle, error) = Nvml.Open(index);
        if (error is not null) throw new InvalidOperationException($"GPU memory cannot be read: {error}");
        return new PeakMemoryProbe($"NVML memory used, GPU {index} (whole device)", Nvml.UsedBytes(handle), handle);
    }

    /// <summary>Takes a last reading, stops sampling and returns the peak above the baseline.</summary>
    public long Stop()
    {
        _stop = true;
        _sampler?.Join();
        return PeakAboveBaselineBytes;
    }

    public void Dispose()
    {
        _stop = true;
        _sampler?.Join();
    }

    private long Current() => _nvml != 0 ? Nvml.UsedBytes(_nvml) : MemoryUsage.PeakRssBytes;

    private void Sample()
    {
        var wait = TimeSpan.FromMilliseconds(1);
        while (!_stop)
        {
            Observe(Current());
            Thread.Sleep(wait);
        }
    }

    private void Observe(long bytes)
    {
        long seen;
        while (bytes > (seen = Interlocked.Read(ref _peak)) && Interlocked.CompareExchange(ref _peak, bytes, seen) != seen) { }
    }

    /// <summary>NVML numbers every GPU of the machine; CUDA only those CUDA_VISIBLE_DEVICES lists, in its order.</summary>
    internal static uint NvmlIndex(int cudaIndex)
    {
        string? visible = Environment.GetEnvironmentVariable("CUDA_VISIBLE_DEVICES");
        var listed = visible?.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries) ?? [];
        return cudaIndex < listed.Length && uint.TryParse(listed[cudaIndex], out uint n) ? n : (uint)cudaIndex;
    }

    /// <summary>Writing 5 to clear_refs resets VmHWM to the current RSS (Linux).</summary>
    private static bool ResetPeakRss()
    {
        try { File.WriteAllText("/proc/self/clear_refs", "5"); return true; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }
}
