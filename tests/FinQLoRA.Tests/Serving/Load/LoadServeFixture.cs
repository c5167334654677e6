using System.Security.Cryptography;
using FinQLoRA.Adapters;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Server;
using FinQLoRA.Server.Audit;
using FinQLoRA.Server.Tenancy;
using FinQLoRA.Tests.Adapters;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Serving.Load;

/// <summary>
/// One server as three desks share it: a tiny seeded Llama with Llama 3's chat format (<see cref="BaseName"/>), 64
/// seeded adapters registered under the adapter root (desk A's <c>a-00</c>…<c>a-31</c>, desk B's <c>b-00</c>…<c>b-31</c>)
/// of which 8 fit on the device at once, a keys file with one key per desk (desk C: the base only), and an audit log.
/// </summary>
public sealed class LoadServeFixture : ServerFixture
{
    public const string BaseName = "tiny";
    public static readonly string[] Desks = ["desk-a", "desk-b", "desk-c"];
    private const int AdaptersPerDesk = 32;

    public string AdapterRoot => Path.Combine(Dir, "adapters");
    public string AuditPath => Path.Combine(Dir, "audit.jsonl");
    /// <summary>Desk id → its key (what its clients send).</summary>
    public Dictionary<string, string> Keys { get; } = [];

    public override async Task InitializeAsync()
    {
        string model = SeededChatLlama.Write(Path.Combine(Dir, "model"), seed: 13);
        using (var loaded = ModelLoading.LoadModel(model, new ModelLoadOptions { DType = ScalarType.Float32 }))
        {
            var lora = new LoraConfig { Rank = 4, Alpha = 8, TargetModules = ["q_proj", "v_proj"] };
            LoraInjector.Apply(loaded, lora, seed: 1);
            foreach (var (name, seed) in AdapterNames().Select((n, i) => (n, 100L + i)))
            {
                // one injected adapter re-drawn per name: 64 different adapters without loading the model 64 times
                LoraTestKit.Randomize(loaded, "default", seed, scale: 0.2);
                PeftAdapterFiles.Save(Path.Combine(AdapterRoot, name), loaded, lora);
            }
        }

        string keys = Path.Combine(Dir, "keys.yaml");
        Add(keys, "desk-a", ["a-*"]);
        Add(keys, "desk-b", ["b-*"]);
        Add(keys, "desk-c", [BaseName]);

        await StartAsync(new ServerHostOptions
        {
            ModelPath = model, Load = new ModelLoadOptions { DType = ScalarType.Float32 },
            Server = new ServerOptions
            {
                ServedModelName = BaseName, Port = 0, AdapterRoot = AdapterRoot, Keys = KeysFile.Read(keys),
                AuditLog = new AuditLogOptions { Path = AuditPath },
            },
            MaxBatch = 8, MaxModelLen = 256, MaxLoras = 8, MaxCpuLoras = 8,
        });
    }

    private static IEnumerable<string> AdapterNames() =>
        Enumerable.Range(0, AdaptersPerDesk).Select(i => $"a-{i:00}").Concat(Enumerable.Range(0, AdaptersPerDesk).Select(i => $"b-{i:00}"));

    /// <summary>A model <paramref name="desk"/> may use, drawn at random.</summary>
    public string OwnModel(string desk, Random random) => desk switch
    {
        "desk-a" => $"a-{random.Next(AdaptersPerDesk):00}",
        "desk-b" => $"b-{random.Next(AdaptersPerDesk):00}",
        _ => BaseName,
    };

    /// <summary>A model that exists but belongs to another desk than <paramref name="desk"/>.</summary>
    public string OtherDesksModel(string desk, Random random) => desk switch
    {
        "desk-a" => random.Next(4) == 0 ? BaseName : $"b-{random.Next(AdaptersPerDesk):00}",
        "desk-b" => random.Next(4) == 0 ? BaseName : $"a-{random.Next(AdaptersPerDesk):00}",
        _ => random.Next(2) == 0 ? $"a-{random.Next(AdaptersPerDesk):00}" : $"b-{random.Next(AdaptersPerDesk):00}",
    };

    /// <summary>The sha256 of an adapter's weights file, computed here, apart from the server's own hashing.</summary>
    public string WeightsSha256(string adapter) =>
        Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(Path.Combine(AdapterRoot, adapter, PeftAdapterFiles.WeightsFileName))));

    private void Add(string keysFile, string id, string[] models)
    {
        string key = ApiKeyHash.NewKey();
        KeysFile.Add(keysFile, new TenantKey(id, ApiKeyHash.Of(key), ModelGrant.Of(models)));
        Keys[id] = key;
    }
}
