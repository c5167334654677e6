using System.Runtime.CompilerServices;
using System.Threading.Channels;
using FinQLoRA.Serving;

namespace FinQLoRA.Server.Common;

/// <summary>Submits a request's choices together (all or none) and merges their event streams in arrival order.</summary>
internal static class EngineStreams
{
    public static List<ChannelReader<EngineEvent>> SubmitAll(ServingEngine engine, IEnumerable<EngineRequest> requests, CancellationTokenSource cancel)
    {
        var readers = new List<ChannelReader<EngineEvent>>();
        try
        {
            foreach (var r in requests) readers.Add(engine.Submit(r));
        }
        catch
        {
            cancel.Cancel(); // the choices already queued leave at the next step
            throw;
        }
        return readers;
    }

    /// <summary>Waits for every choice to finish (a request that does not stream).</summary>
    public static Task<EngineCompletion[]> CompleteAllAsync(IEnumerable<ChannelReader<EngineEvent>> readers, CancellationToken cancellation) =>
        Task.WhenAll(readers.Select(r => EngineCompletion.ReadAsync(r, cancellation)));

    public static async IAsyncEnumerable<(int Index, EngineEvent Event)> Merge(IReadOnlyList<ChannelReader<EngineEvent>> readers,
        [EnumeratorCancellation] CancellationToken cancellation)
    {
        if (readers.Count == 1)
        {
            await foreach (var e in readers[0].ReadAllAsync(cancellation).ConfigureAwait(false)) yield return (0, e);
            yield break;
        }
        var merged = Channel.CreateUnbounded<(int, EngineEvent)>();
        var pumps = readers.Select(async (reader, i) =>
        {
            await foreach (var e in reader.ReadAllAsync(cancellation).ConfigureAwait(false)) merged.Writer.TryWrite((i, e));
        }).ToArray();
        _ = Task.WhenAll(pumps).ContinueWith(t => merged.Writer.TryComplete(t.Exception?.InnerException), TaskScheduler.Default);
        await foreach (var item in merged.Reader.ReadAllAsync(cancellation).ConfigureAwait(false)) yield return item;
    }
}
