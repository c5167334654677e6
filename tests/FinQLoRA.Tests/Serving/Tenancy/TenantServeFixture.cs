using FinQLoRA.Adapters;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Server;
using FinQLoRA.Server.Tenancy;
using FinQLoRA.Tests.Adapters;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Serving.Tenancy;

/// <summary>
/// A server behind a keys file, as a bank's desks share one: a tiny seeded Llama with Llama 3's chat format (served as
/// <see cref="BaseName"/>), adapters <c>desk-a-1</c>, <c>desk-a-2</c> and <c>desk-b-1</c> loaded at start and
/// <c>desk-a-3</c> waiting under the adapter root, and one key per role (<see cref="Keys"/>): each made by
/// <see cref="KeysFile.Add"/> as <c>serve-keys add</c> makes them, the file read back by <see cref="KeysFile.Read"/>.
/// </summary>
public sealed class TenantServeFixture : ServerFixture
{
    public const string BaseName = "tiny";
    /// <summary>Desk A: its adapters only, and it may load and unload them.</summary>
    public const string DeskA = "desk-a";
    /// <summary>Desk B: its adapter and the base.</summary>
    public const string DeskB = "desk-b";
    /// <summary>Everything, two requests per minute.</summary>
    public const string Slow = "slow";
    /// <summary>Everything, 100 tokens per minute.</summary>
    public const string Frugal = "frugal";
    /// <summary>Everything, unlimited: a second tenant that may use what another uses (cache partitions).</summary>
    public const string Auditor = "audit";

    public string AdapterRoot => Path.Combine(Dir, "adapters");
    public string KeysPath => Path.Combine(Dir, "keys.yaml");
    /// <summary>Key id → the key itself (what a client sends).</summary>
    public Dictionary<string, string> Keys { get; } = [];

    public override async Task InitializeAsync()
    {
        string model = SeededChatLlama.Write(Path.Combine(Dir, "model"), seed: 11);
        // desk-a-3 lies one folder down, so that --adapter-root does not serve it from the start (tests load it)
        string[] adapters = ["desk-a-1", "desk-a-2", "desk-b-1", "later/desk-a-3"];
        for (int i = 0; i < adapters.Length; i++) SaveAdapter(model, adapters[i], seed: 20 + i);

        Add(DeskA, ["desk-a-*"], manage: true);
        Add(DeskB, ["desk-b-*", BaseName]);
        Add(Slow, ["*"], rpm: 2);
        Add(Frugal, ["*"], tpm: 100);
        Add(Auditor, ["*"]);

        await StartAsync(new ServerHostOptions
        {
            ModelPath = model, Load = new ModelLoadOptions { DType = ScalarType.Float32 },
            Adapters = [.. adapters[..3].Select(a => (a, Path.Combine(AdapterRoot, a)))],
            Server = new ServerOptions { ServedModelName = BaseName, Port = 0, AdapterRoot = AdapterRoot, Keys = KeysFile.Read(KeysPath) },
            MaxBatch = 4, MaxModelLen = 256,
        });
    }

    private void Add(string id, string[] models, int? rpm = null, int? tpm = null, bool manage = false)
    {
        string key = ApiKeyHash.NewKey();
        KeysFile.Add(KeysPath, new TenantKey(id, ApiKeyHash.Of(key), ModelGrant.Of(models)) { RequestsPerMinute = rpm, TokensPerMinute = tpm, CanManageAdapters = manage });
        Keys[id] = key;
    }

    private static void SaveAdapter(string modelDir, string name, long seed)
    {
        using var model = ModelLoading.LoadModel(modelDir, new ModelLoadOptions { DType = ScalarType.Float32 });
        var config = new LoraConfig { Rank = 4, Alpha = 8, TargetModules = ["q_proj", "v_proj"] };
        LoraInjector.Apply(model, config, seed);
        LoraTestKit.Randomize(model, "default", seed, scale: 0.2);
        PeftAdapterFiles.Save(Path.Combine(Path.GetDirectoryName(modelDir)!, "adapters", name), model, config);
    }

    /// <summary>A client of the server that sends <paramref name="keyId"/>'s key (or <paramref name="rawKey"/> as given).</summary>
    public HttpClient Http(string? keyId, string? rawKey = null)
    {
        var http = new HttpClient { BaseAddress = Url, Timeout = TimeSpan.FromMinutes(2) };
        string? key = rawKey ?? (keyId is null ? null : Keys[keyId]);
        if (key is not null) http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        return http;
    }
}
