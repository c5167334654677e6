using FinQLoRA.Adapters;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Serving;
using FinQLoRA.Tests.Adapters;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Serving;

/// <summary>What the engine-level serving tests share: a family's seeded model carrying adapter <c>a</c>, and requests
/// run alone or admitted together in one step.</summary>
internal static class EngineTestKit
{
    /// <summary>The family's seeded model with adapter <c>a</c> (q, v; nonzero B), and its tokenizer ("stories": the
    /// seeded Llama with stories260K's shapes and its adapters).</summary>
    public static (DecoderModel Model, ITextTokenizer Tokenizer) LoadWithAdapter(string family, string dir)
    {
        if (family == "stories") return (ServingEngineTests.ModelWithAdapters(), ModelLoading.LoadTokenizer(SeededLlama.Folder));
        string folder = SeededFamilies.Write(Path.Combine(dir, family), family);
        var model = SeededFamilies.Load(folder);
        LoraInjector.Apply(model, new LoraConfig { Rank = 4, Alpha = 8, TargetModules = ["q_proj", "v_proj"] }, 1, "a");
        LoraTestKit.Randomize(model, "a", 1, scale: 0.3);
        model.eval();
        return (model, ModelLoading.LoadTokenizer(folder));
    }

    public static EngineCompletion Run(ServingEngine engine, EngineRequest request) =>
        EngineCompletion.ReadAsync(engine.Submit(request)).GetAwaiter().GetResult();

    /// <summary>All at once, admitted together: the scheduler is held until every request waits.</summary>
    public static List<EngineCompletion> RunTogether(ServingEngine engine, IReadOnlyList<EngineRequest> requests)
    {
        List<System.Threading.Channels.ChannelReader<EngineEvent>> readers;
        using (engine.PauseForTests()) readers = requests.Select(engine.Submit).ToList();
        return readers.Select(r => EngineCompletion.ReadAsync(r).GetAwaiter().GetResult()).ToList();
    }
}
