using FinQLoRA.Loading;
using FinQLoRA.Serving;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Serving.Operations;

/// <summary>The waiting queue under priorities: lowest first, ties by arrival, and a row put back goes where its
/// priority and arrival place it (before later rows of its priority, after a more urgent newcomer).</summary>
public sealed class WaitingQueuePriorityTests
{
    [Fact]
    public void LowestPriorityFirstTiesByArrivalAndAPutBackRowKeepsItsPlace()
    {
        using var rows = new Rows();
        EngineRow Row(string name, int priority) => rows.Add(name, priority);
        {
            var queue = new WaitingQueue(maxQueue: 16, observer: null);
            foreach (var (name, priority) in new[] { ("a", 0), ("b", 5), ("c", -2), ("d", 0), ("e", 5), ("f", -2) })
                Assert.True(queue.TryAdd(Row(name, priority), freeSlots: 1));
            Assert.True(queue.TryTake(out var first));
            Assert.Equal("c", first.Request.Adapter);
            Assert.True(queue.TryAdd(Row("g", -2), freeSlots: 1)); // arrives while c is out
            queue.PutBack(first);                                  // c came before f and g: it keeps its turn
            var order = new List<string>();
            while (queue.TryTake(out var row)) order.Add(row.Request.Adapter!);
            Assert.Equal(["c", "f", "g", "a", "d", "b", "e"], order);

            Assert.True(queue.TryAdd(Row("x", 0), freeSlots: 1));
            Assert.Equal(["x"], queue.Adapters());
        }
    }

    /// <summary>Residency's admission takes the first row whose adapter is on the device, skipping the others; what it
    /// skips keeps its place and a row it put back goes where its priority and arrival place it, not to the end.</summary>
    [Fact]
    public void TakingTheFirstEligibleRowSkipsOthersAndPuttingItBackKeepsPriorityOrder()
    {
        using var rows = new Rows();
        EngineRow Row(string name, int priority) => rows.Add(name, priority);
        {
            var queue = new WaitingQueue(maxQueue: 16, observer: null);
            // adapters named "off-*" are not on the device
            foreach (var (name, priority) in new[] { ("on-a", 3), ("off-b", -1), ("on-c", 0), ("off-d", 0), ("on-e", -1) })
                Assert.True(queue.TryAdd(Row(name, priority), freeSlots: 1));
            Assert.True(queue.TryTake(r => r.Request.Adapter!.StartsWith("on-", StringComparison.Ordinal), out var taken));
            Assert.Equal("on-e", taken.Request.Adapter); // off-b goes before it but is skipped
            Assert.True(queue.TryTake(r => r.Request.Adapter!.StartsWith("on-", StringComparison.Ordinal), out var second));
            Assert.Equal("on-c", second.Request.Adapter);
            Assert.True(queue.TryAdd(Row("on-f", 0), freeSlots: 1)); // arrives after on-c with the same priority
            queue.PutBack(second);
            queue.PutBack(taken);
            var order = new List<string>();
            while (queue.TryTake(out var row)) order.Add(row.Request.Adapter!);
            Assert.Equal(["off-b", "on-e", "on-c", "off-d", "on-f", "on-a"], order);
            Assert.False(queue.TryTake(_ => true, out _));
        }
    }

    /// <summary>Rows of a two-token prompt naming their "adapter", disposed together at the end of a test.</summary>
    private sealed class Rows : IDisposable
    {
        private readonly FinQLoRA.Data.Tokenization.ITextTokenizer _tokenizer = ModelLoading.LoadTokenizer(SeededLlama.Folder);
        private readonly List<EngineRow> _rows = [];

        public EngineRow Add(string adapter, int priority)
        {
            var row = new EngineRow(new EngineRequest([1, 5], adapter, new SamplingParams()) { Priority = priority }, _tokenizer, CPU);
            _rows.Add(row);
            return row;
        }

        public void Dispose()
        {
            foreach (var r in _rows) r.Dispose();
        }
    }
}
