using System.Threading.Channels;
using FinQLoRA.Serving;

namespace FinQLoRA.Tests.Serving.Residency;

/// <summary>
/// Adapters on demand in the engine: five registered adapters served through fewer device slots give the same greedy
/// tokens as with all resident; the least recently used idle adapter leaves; an adapter a running row holds never
/// leaves (a request for another waits in the queue and runs after, no deadlock); a request whose adapter is being read
/// waits while others run; a pinned adapter stays; host memory spares the disk.
/// </summary>
public sealed class AdapterResidencyTests(ResidencyKit kit) : IClassFixture<ResidencyKit>
{
    private static EngineCompletion Read(ChannelReader<EngineEvent> reader) => EngineCompletion.ReadAsync(reader).GetAwaiter().GetResult();

    private static void Run(ServingEngine engine, params EngineRequest[] requests)
    {
        foreach (var r in requests) Read(engine.Submit(r));
    }

    private static (IReadOnlyList<string> Resident, IReadOnlyList<string> InHost) State(ServingEngine engine) =>
        engine.ResidencyAsync().GetAwaiter().GetResult();

    [Fact]
    public void TwoSlotsForFiveAdaptersGiveTheTokensOfAllResident()
    {
        var requests = Enumerable.Range(0, 15).Select(i => kit.Greedy(i % 6 == 5 ? null : ResidencyKit.Names[i % 6], i, tokens: 6 + i % 5)).ToList();
        List<IReadOnlyList<int>> Tokens(int maxLoras, int? maxCpuLoras, out long reads)
        {
            using var served = kit.Engine(maxLoras, maxCpuLoras, maxBatch: 4);
            var tokens = new List<IReadOnlyList<int>>();
            foreach (var wave in requests.Chunk(5)) // each wave at once: rows of several adapters compete for the slots
            {
                var readers = wave.Select(served.Engine.Submit).ToList();
                tokens.AddRange(readers.Select(r => Read(r).TokenIds));
            }
            reads = served.Engine.Residency.DiskReads;
            return tokens;
        }
        var allResident = Tokens(5, null, out long readsAll);
        var twoSlots = Tokens(2, 0, out long readsTwo);
        Assert.Equal(allResident, twoSlots);
        Assert.Equal(5, readsAll); // each folder read once
        Assert.True(readsTwo > 5, $"with 2 slots and no host copies the folders are read again ({readsTwo} reads)");
        using var baseOnly = kit.Engine(1);
        var bases = requests.Select(r => Read(baseOnly.Engine.Submit(r with { Adapter = null })).TokenIds).ToList();
        foreach (string name in ResidencyKit.Names) // every adapter changes its output, so a wrong slot would show
            Assert.Contains(Enumerable.Range(0, requests.Count), i => requests[i].Adapter == name && !allResident[i].SequenceEqual(bases[i]));
    }

    [Fact]
    public void TheLeastRecentlyUsedIdleAdapterLeavesAndWaitsInHostMemory()
    {
        using var served = kit.Engine(maxLoras: 2, maxCpuLoras: 1);
        var engine = served.Engine;
        Assert.Empty(State(engine).Resident); // registered, none read yet
        Assert.Equal(0, engine.Residency.DiskReads);
        Assert.Equal(ResidencyKit.Names, engine.Adapters); // listed all the same
        Run(engine, kit.Greedy("r0", 0), kit.Greedy("r1", 1), kit.Greedy("r0", 2));
        Assert.Equal(["r1", "r0"], State(engine).Resident); // least recently used first
        Run(engine, kit.Greedy("r2", 3));
        Assert.Equal(["r0", "r2"], State(engine).Resident); // r1 left
        Assert.Equal(["r1"], State(engine).InHost);
        Run(engine, kit.Greedy("r3", 4));
        Assert.Equal(["r2", "r3"], State(engine).Resident);
        Assert.Equal(["r0"], State(engine).InHost); // one host copy kept: the more recent one
    }

    [Fact]
    public async Task AnAdapterARowHoldsNeverLeavesAndTheOtherRequestWaitsThenRuns()
    {
        IReadOnlyList<int> aloneB;
        using (var alone = kit.Engine(1)) aloneB = (await EngineCompletion.ReadAsync(alone.Engine.Submit(kit.Greedy("r1", 1, tokens: 6)))).TokenIds;
        using var served = kit.Engine(maxLoras: 1);
        var engine = served.Engine;
        // 100 tokens (the pool holds 128 positions): A must still be running when the counts are read below, also on a
        // loaded machine where the test thread lags the engine by many steps
        var readerA = engine.Submit(kit.Greedy("r0", 0, tokens: 100));
        Assert.False((await readerA.ReadAsync()).IsFinal); // A runs on the one slot
        var readerB = engine.Submit(kit.Greedy("r1", 1, tokens: 6));
        // Every step now tries to admit B, which needs r0's slot; A's further tokens prove that steps went by.
        for (int i = 0; i < 5; i++) Assert.False((await readerA.ReadAsync()).IsFinal);
        Assert.Equal((1, 1), await engine.CountsBetweenStepsAsync());
        Assert.False(readerB.TryRead(out _));
        Assert.Equal(["r0"], (await engine.ResidencyAsync()).Resident);
        var activity = engine.AdapterActivity();
        Assert.Equal(["r0"], activity.Running);
        Assert.Equal(["r1"], activity.Waiting);
        Assert.Equal(1, activity.MaxLoras);
        // A later request on the resident r0 does not overtake B: r0 takes no new rows until it has left for B.
        var readerA2 = engine.Submit(kit.Greedy("r0", 2, tokens: 6));
        for (int i = 0; i < 3; i++) Assert.False((await readerA.ReadAsync()).IsFinal);
        Assert.Equal((2, 1), await engine.CountsBetweenStepsAsync());

        await EngineCompletion.ReadAsync(readerA);
        var b = await EngineCompletion.ReadAsync(readerB);
        await EngineCompletion.ReadAsync(readerA2);
        Assert.Equal(aloneB, b.TokenIds);
        Assert.Equal(0, engine.Queued + engine.Running);
    }

    [Fact]
    public async Task ARequestWhoseAdapterIsBeingReadWaitsWhileOthersRun()
    {
        using var served = kit.Engine(maxLoras: 2);
        var engine = served.Engine;
        var reached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        engine.Residency.BeforeRead = async name => { if (name == "r2") { reached.TrySetResult(); await release.Task; } };
        var waiting = engine.Submit(kit.Greedy("r2", 0));
        await reached.Task;
        // While r2 is read, the base and another adapter are served.
        Assert.NotEmpty((await EngineCompletion.ReadAsync(engine.Submit(kit.Greedy(null, 1)))).TokenIds);
        Assert.NotEmpty((await EngineCompletion.ReadAsync(engine.Submit(kit.Greedy("r1", 1)))).TokenIds);
        Assert.False(waiting.TryRead(out _));
        Assert.Equal(1, engine.Queued);
        Assert.Equal(["r2"], engine.AdapterActivity().Waiting);
        release.SetResult();
        var done = await EngineCompletion.ReadAsync(waiting);
        using var reference = kit.Engine(5);
        Assert.Equal((await EngineCompletion.ReadAsync(reference.Engine.Submit(kit.Greedy("r2", 0)))).TokenIds, done.TokenIds);
    }

    [Fact]
    public void APinnedAdapterIsReadAtStartAndNeverLeaves()
    {
        using var served = kit.Engine(maxLoras: 2, maxCpuLoras: 0, maxBatch: 4, pinned: "r4");
        var engine = served.Engine;
        Assert.Equal(["r4"], State(engine).Resident);
        Assert.Equal(1, engine.Residency.DiskReads);
        foreach (string name in new[] { "r0", "r1", "r2", "r3", "r0" })
        {
            Run(engine, kit.Greedy(name, 0), kit.Greedy(name, 1));
            var (resident, _) = State(engine);
            Assert.Contains("r4", resident);
            Assert.Contains(name, resident);
        }
        Run(engine, kit.Greedy("r4", 2));
        Assert.Equal(1 + 5, engine.Residency.DiskReads); // r4 never read again; r0 twice (no host copies kept)
    }

    [Fact]
    public void AHostMemoryCopySparesTheDisk()
    {
        using (var served = kit.Engine(maxLoras: 1, maxCpuLoras: 1))
        {
            Run(served.Engine, kit.Greedy("r0", 0), kit.Greedy("r1", 0), kit.Greedy("r0", 0));
            Assert.Equal(2, served.Engine.Residency.DiskReads); // r0 came back from host memory
        }
        using (var served = kit.Engine(maxLoras: 1, maxCpuLoras: 0))
        {
            Run(served.Engine, kit.Greedy("r0", 0), kit.Greedy("r1", 0), kit.Greedy("r0", 0));
            Assert.Equal(3, served.Engine.Residency.DiskReads); // nothing kept: read again
        }
    }
}
