using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using FinQLoRA.Adapters;
using FinQLoRA.IO;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Runtime;
using FinQLoRA.Server;
using FinQLoRA.Tests.Adapters;
using FinQLoRA.Tests.Support;
using FinQLoRA.Training;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Serving.ConsolePage;

/// <summary>
/// A server behind an API key over a tiny seeded Llama with Llama 3's chat format (as <see cref="ChatServeFixture"/>,
/// without its generate runs; no ../shared), serving two seeded adapters: <c>fin</c> with a <c>lineage.json</c> that
/// records real hashes of the model folder and a data file, and <c>plain</c>, the same weights without one. Runtime
/// loading is allowed from <see cref="AdapterRoot"/>.
/// </summary>
public sealed class ConsoleFixture : ServerFixture
{
    public const string ModelName = "tiny-llama3";
    public const string Key = "sk-console-key";
    public const string WithLineage = "fin";
    public const string WithoutLineage = "plain";

    public string ModelDir => Path.Combine(Dir, "model");
    public string AdapterRoot => Path.Combine(Dir, "adapters");
    public string LineageAdapterDir => Path.Combine(AdapterRoot, WithLineage);
    public string DataFile => Path.Combine(Dir, "train.jsonl");
    /// <summary>The lineage.json written into <see cref="LineageAdapterDir"/>, as written.</summary>
    public JsonObject Lineage { get; private set; } = null!;
    /// <summary>Sends the key on every request.</summary>
    public HttpClient Http { get; private set; } = null!;

    public override async Task InitializeAsync()
    {
        SeededChatLlama.Write(ModelDir, seed: 5);
        File.WriteAllText(DataFile, "{\"instruction\": \"What is the sentiment?\", \"input\": \"Shares rose.\", \"output\": \"positive\"}\n");

        string plainDir = Path.Combine(AdapterRoot, WithoutLineage);
        using (var model = ModelLoading.LoadModel(ModelDir, new ModelLoadOptions { DType = ScalarType.Float32 }))
        {
            var lora = new LoraConfig { Rank = 4, Alpha = 8, TargetModules = ["q_proj", "v_proj", "o_proj"] };
            LoraInjector.Apply(model, lora, 11);
            LoraTestKit.Randomize(model, "default", 11, scale: 2.0);
            PeftAdapterFiles.Save(LineageAdapterDir, model, lora);
            PeftAdapterFiles.Save(plainDir, model, lora);
        }
        // What FinalAdapter records for a training run (RunLineage.Describe's fields), over this fixture's own files.
        var lineage = new JsonObject
        {
            ["finqlora_version"] = BuildInfo.Version,
            ["commit"] = "0123456789abcdef0123456789abcdef01234567",
            ["command_line"] = new JsonArray("finqlora", "train", "--model", ModelDir, "--data", DataFile, "--out", "runs/fin"),
            ["inputs"] = new JsonObject { ["model"] = FileHashes.Describe(ModelDir), ["data"] = FileHashes.Describe(DataFile) },
        };
        RunLineage.WriteInto(LineageAdapterDir, lineage);
        Lineage = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(LineageAdapterDir, RunLineage.FileName)))!;

        await StartAsync(new ServerHostOptions
        {
            ModelPath = ModelDir, Load = new ModelLoadOptions { DType = ScalarType.Float32 },
            Adapters = [(WithLineage, LineageAdapterDir), (WithoutLineage, plainDir)],
            Server = new ServerOptions { ServedModelName = ModelName, Port = 0, ApiKey = Key, AdapterRoot = AdapterRoot },
            MaxBatch = 4, MaxModelLen = 256, PrefixCacheGib = 0.03125,
        });
        Http = new HttpClient { BaseAddress = Url, Timeout = TimeSpan.FromMinutes(2) };
        Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Key);
    }

    public override async Task DisposeAsync()
    {
        Http?.Dispose();
        await base.DisposeAsync();
    }
}
