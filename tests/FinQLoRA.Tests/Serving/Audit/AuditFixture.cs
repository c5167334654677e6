using System.Net.Http.Headers;
using FinQLoRA.Adapters;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Server;
using FinQLoRA.Server.Audit;
using FinQLoRA.Tests.Adapters;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Serving.Audit;

/// <summary>
/// A server with an audit log (no content): a tiny seeded Llama with Llama 3's chat format (so that completions, chat
/// and decisions all answer), adapter <c>a</c> loaded at start and <c>c</c> waiting under the adapter root, behind an API key.
/// </summary>
public sealed class AuditFixture : ServerFixture
{
    public const string ModelName = "tiny-audited";
    public const string Key = "sk-audit-key";

    public string ModelDir => Path.Combine(Dir, "model");
    public string AdapterRoot => Path.Combine(Dir, "adapters");
    public string AdapterDir => Path.Combine(AdapterRoot, "a");
    public string AuditFile => Path.Combine(Dir, "audit.jsonl");
    /// <summary>Sends the API key.</summary>
    public HttpClient Http { get; private set; } = null!;

    public override async Task InitializeAsync()
    {
        SeededChatLlama.Write(ModelDir, seed: 7);
        SaveAdapter(ModelDir, AdapterDir);
        // one folder down, so that --adapter-root does not serve it from the start (a test loads it)
        SaveAdapter(ModelDir, Path.Combine(AdapterRoot, "later", "c"), seed: 11);

        await StartAsync(new ServerHostOptions
        {
            ModelPath = ModelDir, Load = new ModelLoadOptions { DType = ScalarType.Float32 },
            Adapters = [("a", AdapterDir)],
            Server = new ServerOptions
            {
                ServedModelName = ModelName, Port = 0, ApiKey = Key, AdapterRoot = AdapterRoot,
                AuditLog = new AuditLogOptions { Path = AuditFile },
            },
            MaxBatch = 4, MaxModelLen = 256,
        });
        Http = new HttpClient { BaseAddress = Url, Timeout = TimeSpan.FromMinutes(2) };
        Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Key);
    }

    /// <summary>A seeded adapter with nonzero B (so that it changes the answers) saved as a PEFT folder.</summary>
    public static void SaveAdapter(string modelDir, string adapterDir, long seed = 3)
    {
        using var model = ModelLoading.LoadModel(modelDir, new ModelLoadOptions { DType = ScalarType.Float32 });
        var lora = new LoraConfig { Rank = 4, Alpha = 8, TargetModules = ["q_proj", "v_proj"] };
        LoraInjector.Apply(model, lora, seed);
        LoraTestKit.Randomize(model, "default", seed, scale: 0.2);
        PeftAdapterFiles.Save(adapterDir, model, lora);
    }

    public override async Task DisposeAsync()
    {
        Http?.Dispose();
        await base.DisposeAsync();
    }
}
