using FinQLoRA.Loading;
using FinQLoRA.Serving;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Serving.Operations;

/// <summary>What the scheduler reports for vLLM's series, seen by an observer of every call: each iteration's KV-slot
/// use and the adapters running and waiting (vLLM's lora_requests_info), each request's admission (queue time) and
/// end (e2e latency).</summary>
public sealed class EngineReportsTests
{
    [Fact]
    public async Task EachIterationReportsItsSlotsAndTheRunningAndWaitingAdapters()
    {
        var tokenizer = ModelLoading.LoadTokenizer(SeededLlama.Folder);
        using var model = ServingEngineTests.ModelWithAdapters(); // adapters a, b, d
        var observer = new Recorder();
        using var engine = new ServingEngine(model, tokenizer, new EngineOptions { MaxBatch = 1, MaxModelLen = 64, MaxLoras = 3 }, observer);
        var requests = new[] { ("a", 4), ("b", 4), ((string?)null, 5) }
            .Select(r => new EngineRequest([1, 5, 6, 7], r.Item1, new SamplingParams { MaxTokens = r.Item2, Temperature = 0 })).ToList();
        List<System.Threading.Channels.ChannelReader<EngineEvent>> readers;
        using (engine.PauseForTests()) readers = requests.Select(engine.Submit).ToList();
        foreach (var r in readers) await EngineCompletion.ReadAsync(r);
        await engine.SchedulerLiveTensorsAsync(); // one more iteration has ended: its report is in

        var states = observer.States();
        Assert.All(states, s => Assert.Equal(3, s.MaxLoras));
        Assert.All(states, s => Assert.Contains(s.Usage, new[] { 0.0, 1.0 })); // one slot: held or not
        // one slot: a runs while b waits, then b runs alone, then the base (unnamed) and nothing waits (each request
        // spans iterations: a prefill gives one token, and each decode step one more)
        Assert.Contains(states, s => s is { Running: "a", Waiting: "b", Usage: 1.0 });
        Assert.Contains(states, s => s is { Running: "b", Waiting: "", Usage: 1.0 });
        Assert.Contains(states, s => s is { Running: "", Waiting: "", Usage: 1.0 });
        Assert.Equal(("", "", 0.0), (states[^1].Running, states[^1].Waiting, states[^1].Usage));
        Assert.Equal(["a", "b", "base"], observer.Admitted);
        Assert.Equal(["a", "b", "base"], observer.Ended);
    }

    private sealed class Recorder : IEngineObserver
    {
        private readonly List<(double Usage, string Running, string Waiting, int MaxLoras)> _states = [];
        public List<string> Admitted { get; } = [];
        public List<string> Ended { get; } = [];

        public List<(double Usage, string Running, string Waiting, int MaxLoras)> States()
        {
            lock (_states) return [.. _states];
        }

        public void QueueDepth(int waiting) { }
        public void BatchSize(int running) { }
        public void FirstToken(string? adapter, TimeSpan sinceSubmit) { }
        public void NextToken(string? adapter, TimeSpan sincePrevious) { }
        public void Finished(string? adapter, int promptTokens, int completionTokens) { }
        void IEngineObserver.Admitted(string? adapter, TimeSpan queued)
        {
            Assert.True(queued >= TimeSpan.Zero);
            lock (_states) Admitted.Add(adapter ?? "base");
        }
        public void RequestLatency(string? adapter, TimeSpan sinceSubmit)
        {
            lock (_states) Ended.Add(adapter ?? "base");
        }
        public void IterationState(double kvCacheUsage, IReadOnlyList<string> runningAdapters, IReadOnlyList<string> waitingAdapters, int maxLoras)
        {
            lock (_states) _states.Add((kvCacheUsage, string.Join(',', runningAdapters), string.Join(',', waitingAdapters), maxLoras));
        }
    }
}
