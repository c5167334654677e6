using System.Net.Http.Headers;
using FinQLoRA.Adapters;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Server;
using FinQLoRA.Tests.Adapters;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Serving.Fuzzing;

/// <summary>
/// The server the request fuzzer shoots at: a tiny seeded random Llama with Llama 3's chat format (so that chat,
/// structured outputs and decisions all reach the engine), adapter <c>a</c> loaded at start and <c>b</c> waiting under
/// the adapter root (so that the load and unload routes do real work), behind an API key, with a small body limit (so
/// that 413 is reachable). No ../shared needed.
/// </summary>
public sealed class FuzzServeFixture : ServerFixture
{
    public const string BaseName = "tiny-fuzz";
    public const string Key = "sk-fuzz-key";
    public const int MaxBodyBytes = 32 * 1024;

    public string AdapterRoot => Path.Combine(Dir, "adapters");
    public HttpClient Http { get; private set; } = null!;

    public override async Task InitializeAsync()
    {
        var config = new ModelConfig
        {
            HiddenSize = 32, IntermediateSize = 64, NumLayers = 2, NumHeads = 4, NumKvHeads = 2, HeadDim = 8,
            VocabSize = SeededTokenizer.Llama3ChatVocabSize, MaxPositionEmbeddings = 256, TieWordEmbeddings = false,
            BosTokenId = SeededTokenizer.Llama3Bos, EosTokenIds = [SeededTokenizer.Llama3EndOfText, SeededTokenizer.Llama3Eot],
        };
        string model = SeededChatLlama.Write(Path.Combine(Dir, "model"), seed: 24, config);
        SaveAdapter(model, "a", 1);
        SaveAdapter(model, "b", 2);
        await StartAsync(new ServerHostOptions
        {
            ModelPath = model, Load = new ModelLoadOptions { DType = ScalarType.Float32 },
            Adapters = [("a", Path.Combine(AdapterRoot, "a"))],
            Server = new ServerOptions { ServedModelName = BaseName, Port = 0, ApiKey = Key, AdapterRoot = AdapterRoot, MaxBodyBytes = MaxBodyBytes },
            MaxBatch = 4, MaxQueue = 64, MaxModelLen = 256, PrefixCacheGib = 0.01,
        });
        Http = new HttpClient { BaseAddress = Url, Timeout = TimeSpan.FromMinutes(2) };
        Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Key);
    }

    public override async Task DisposeAsync()
    {
        Http?.Dispose();
        await base.DisposeAsync();
    }

    private void SaveAdapter(string modelFolder, string name, long seed)
    {
        using var model = ModelLoading.LoadModel(modelFolder, new ModelLoadOptions { DType = ScalarType.Float32 });
        var config = new LoraConfig { Rank = 4, Alpha = 8, TargetModules = ["q_proj", "v_proj"] };
        LoraInjector.Apply(model, config, seed);
        LoraTestKit.Randomize(model, "default", seed, scale: 0.2);
        PeftAdapterFiles.Save(Path.Combine(AdapterRoot, name), model, config);
    }
}
