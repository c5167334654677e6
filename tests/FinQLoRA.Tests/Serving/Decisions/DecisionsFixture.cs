using FinQLoRA.Adapters;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Server;
using FinQLoRA.Tests.Adapters;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Serving.Decisions;

/// <summary>A server over the seeded Llama (stories260K's shapes and tokenizer, no chat template, f32; no ../shared)
/// with a seeded adapter <c>a</c>, a context long enough for decision prompts and a prefix cache.</summary>
public sealed class DecisionsFixture : ServerFixture
{
    public const string BaseName = "stories";
    public const string Adapter = "a";
    public const int MaxModelLen = 384;
    public string AdapterDir => Path.Combine(Dir, "adapters", Adapter);
    public HttpClient Http { get; private set; } = null!;

    public override async Task InitializeAsync()
    {
        using (var model = SeededLlama.Load())
        {
            var config = new LoraConfig { Rank = 4, Alpha = 8, TargetModules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] };
            LoraInjector.Apply(model, config, 11);
            LoraTestKit.Randomize(model, "default", 11, scale: 2.0);
            PeftAdapterFiles.Save(AdapterDir, model, config);
        }
        await StartAsync(new ServerHostOptions
        {
            ModelPath = SeededLlama.Folder, Load = new ModelLoadOptions { DType = ScalarType.Float32 },
            Adapters = [(Adapter, AdapterDir)],
            Server = new ServerOptions { ServedModelName = BaseName, Port = 0 },
            MaxBatch = 8, MaxQueue = 64, MaxModelLen = MaxModelLen, PrefixCacheGib = 0.0625,
        });
        Http = new HttpClient { BaseAddress = Url, Timeout = TimeSpan.FromMinutes(2) };
    }

    public override async Task DisposeAsync()
    {
        Http?.Dispose();
        await base.DisposeAsync();
    }

    /// <summary>The served model loaded apart (the server's copy belongs to its scheduler thread), with the adapter
    /// applied when <paramref name="adapter"/> is set.</summary>
    public DecoderModel LoadReference(bool adapter)
    {
        var model = SeededLlama.Load();
        if (adapter) PeftAdapterFiles.Load(AdapterDir, model);
        model.eval();
        return model;
    }
}
