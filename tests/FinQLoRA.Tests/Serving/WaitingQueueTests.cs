using FinQLoRA.Loading;
using FinQLoRA.Serving;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Serving;

/// <summary>The scheduler's waiting queue: first come first served, a put-back row keeps its turn, the bound counts
/// only what waits beyond the free slots, and cancelled rows come out in order.</summary>
public sealed class WaitingQueueTests
{
    [Fact]
    public void BoundedBeyondTheFreeSlotsFifoWithPutBackAtTheHead()
    {
        var tokenizer = ModelLoading.LoadTokenizer(SeededLlama.Folder);
        using var cancel = new CancellationTokenSource();
        EngineRow Row(int id, bool cancellable = false) =>
            new(new EngineRequest([1, id], null, new SamplingParams(), cancellable ? cancel.Token : default), tokenizer, CPU);
        var rows = new[] { Row(10), Row(11, cancellable: true), Row(12), Row(13, cancellable: true) };
        try
        {
            var queue = new WaitingQueue(maxQueue: 1, observer: null);
            Assert.True(queue.TryAdd(rows[0], freeSlots: 2));
            Assert.True(queue.TryAdd(rows[1], freeSlots: 2));
            Assert.True(queue.TryAdd(rows[2], freeSlots: 2));  // one waits beyond the two free slots
            Assert.False(queue.TryAdd(rows[3], freeSlots: 2)); // a second one would be over the bound
            Assert.True(queue.TryAdd(rows[3], freeSlots: 3));
            Assert.Equal(4, queue.Count);

            Assert.True(queue.TryTake(out var first));
            Assert.Same(rows[0], first);
            queue.PutBack(first);
            Assert.True(queue.TryTake(out var again));
            Assert.Same(rows[0], again);

            cancel.Cancel();
            Assert.Equal([rows[1], rows[3]], queue.RemoveCancelled());
            Assert.True(queue.TryTake(out var next));
            Assert.Same(rows[2], next);
            Assert.False(queue.TryTake(out _));
            Assert.Equal(0, queue.Count);
        }
        finally
        {
            foreach (var r in rows) r.Dispose();
        }
    }
}
