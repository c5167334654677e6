using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using FinQLoRA.Adapters;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Server;
using FinQLoRA.Serving;
using FinQLoRA.Tests.Adapters;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Serving.Operations;

/// <summary>
/// Two servers over one tiny seeded Llama with the seeded tokenizer's Llama 3 chat variant and adapter <c>desk</c>
/// (written to a temporary folder; no ../shared): <see cref="Priority"/> behind an API key with
/// <c>--scheduling-policy priority</c> and one KV slot (so that waiting requests are admitted one by one), and
/// <see cref="Fcfs"/> with the defaults' first come, first served, two slots and no key.
/// </summary>
public sealed class OperationsFixture : IAsyncLifetime
{
    public const string ModelName = "ops-llama3";
    public const string Adapter = "desk";
    public const string Key = "sk-ops-key";
    public const int MaxModelLen = 256;

    private readonly TempFolder _temp = new();
    public string ModelDir => Path.Combine(_temp.Path, "model");
    public string AdapterDir => Path.Combine(_temp.Path, "adapters", Adapter);
    public ServerHost Priority { get; private set; } = null!;
    public ServerHost Fcfs { get; private set; } = null!;
    /// <summary>A client of <see cref="Priority"/> that sends the key.</summary>
    public HttpClient Http { get; private set; } = null!;
    public HttpClient FcfsHttp { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        SeededChatLlama.Write(ModelDir, seed: 7, SeededChatLlama.Config(maxPositions: MaxModelLen));
        using (var model = ModelLoading.LoadModel(ModelDir, new ModelLoadOptions { DType = ScalarType.Float32 }))
        {
            var lora = new LoraConfig { Rank = 4, Alpha = 8, TargetModules = ["q_proj", "v_proj"] };
            LoraInjector.Apply(model, lora, 3);
            LoraTestKit.Randomize(model, "default", 3, scale: 0.2);
            PeftAdapterFiles.Save(AdapterDir, model, lora);
        }

        Priority = await OpenAsync(new ServerOptions { ServedModelName = ModelName, Port = 0, ApiKey = Key }, maxBatch: 1, SchedulingPolicy.Priority);
        Fcfs = await OpenAsync(new ServerOptions { ServedModelName = ModelName, Port = 0 }, maxBatch: 2, SchedulingPolicy.Fcfs);
        Http = new HttpClient { BaseAddress = Priority.Url, Timeout = TimeSpan.FromMinutes(2) };
        Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Key);
        FcfsHttp = new HttpClient { BaseAddress = Fcfs.Url, Timeout = TimeSpan.FromMinutes(2) };
    }

    /// <summary>--max-loras of the fixture's servers (not the default 8, so that vLLM's max_lora shows it is the flag's).</summary>
    public const int MaxLoras = 3;

    /// <summary>A started server over the fixture's model and adapter, as <c>finqlora serve</c> builds it.</summary>
    public async Task<ServerHost> OpenAsync(ServerOptions server, int maxBatch, SchedulingPolicy policy)
    {
        var host = ServerHost.Open(new ServerHostOptions
        {
            ModelPath = ModelDir, Load = new ModelLoadOptions { DType = ScalarType.Float32 },
            Adapters = [(Adapter, AdapterDir)], Server = server,
            MaxBatch = maxBatch, MaxModelLen = MaxModelLen, SchedulingPolicy = policy, PrefixCacheGib = 0.01, MaxLoras = MaxLoras,
        });
        await host.StartAsync();
        return host;
    }

    public async Task DisposeAsync()
    {
        Http?.Dispose();
        FcfsHttp?.Dispose();
        foreach (var host in new[] { Priority, Fcfs })
            if (host is not null)
            {
                await host.StopAsync();
                await host.DisposeAsync();
            }
        _temp.Dispose();
    }

    public static async Task<(int Status, JsonNode Body)> PostAsync(HttpClient http, string path, JsonObject body, CancellationToken cancellation = default)
    {
        using var response = await http.PostAsJsonAsync(path, body, cancellation);
        string text = await response.Content.ReadAsStringAsync(cancellation);
        return ((int)response.StatusCode, JsonNode.Parse(text)!);
    }

    /// <summary>A greedy completion that cannot end early: the regex admits no end of sequence before its
    /// <paramref name="letters"/> letters, so the stream runs until <paramref name="maxTokens"/>.</summary>
    public static JsonObject Long(string model, int maxTokens, int letters = 200) => new()
    {
        ["model"] = model, ["prompt"] = "Once upon a time", ["max_tokens"] = maxTokens, ["temperature"] = 0,
        ["structured_outputs"] = new JsonObject { ["regex"] = $"[a-z]{{{letters}}}" },
    };
}
