using System.ClientModel;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using FinQLoRA.Loading;
using FinQLoRA.Server;
using FinQLoRA.Serving;
using FinQLoRA.Tests.Support;
using OpenAI;
using OpenAI.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Serving.Residency;

/// <summary>Residency through <c>finqlora serve</c>'s host: <c>--adapter-root</c> serves every adapter folder under it
/// by name, listed before any is read; completions through two device slots equal the engine's with all five resident;
/// bad slot options stop the command with one line and exit 2 before the model loads.</summary>
public sealed class ResidencyServerTests(ResidencyKit kit) : IClassFixture<ResidencyKit>
{
    [Fact]
    public async Task TheRootsFoldersAreListedBeforeAnyIsReadAndServeLikeAllResident()
    {
        string root = Path.GetDirectoryName(kit.DirOf("r0"))!;
        await using var host = ServerHost.Open(new ServerHostOptions
        {
            ModelPath = SeededLlama.Folder, Load = new ModelLoadOptions { DType = ScalarType.Float32 },
            Adapters = [("r4", kit.DirOf("r4"))], PinnedAdapters = ["r4"], // the root's own folder, by its name: one adapter
            Server = new ServerOptions { ServedModelName = "stories", Port = 0, AdapterRoot = root },
            MaxBatch = 4, MaxModelLen = 128, MaxLoras = 2, MaxCpuLoras = 0,
        });
        await host.StartAsync();
        try
        {
            var client = new OpenAIModelClient(new ApiKeyCredential("not-needed"), new OpenAIClientOptions { Endpoint = new Uri(host.Url!, "v1") });
            Assert.Equal(["stories", "r4", "r0", "r1", "r2", "r3"], client.GetModels().Value.Select(m => m.Id));
            Assert.Equal(["r4"], (await host.Engine.ResidencyAsync()).Resident); // only the pin was read
            Assert.Equal(1, host.Engine.Residency.DiskReads);

            using var reference = kit.Engine(5);
            using var http = new HttpClient { BaseAddress = host.Url };
            var names = ResidencyKit.Names.Concat(ResidencyKit.Names).ToList();
            var answers = await Task.WhenAll(names.Select(async (name, i) =>
            {
                var body = new JsonObject { ["model"] = name, ["prompt"] = ResidencyKit.Prompts[i % ResidencyKit.Prompts.Length], ["max_tokens"] = 8, ["temperature"] = 0 };
                using var response = await http.PostAsJsonAsync("/v1/completions", body);
                Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
                return JsonNode.Parse(await response.Content.ReadAsStringAsync())!["choices"]![0]!["text"]!.GetValue<string>();
            }));
            for (int i = 0; i < names.Count; i++)
            {
                var expected = await EngineCompletion.ReadAsync(reference.Engine.Submit(kit.Greedy(names[i], i)));
                Assert.Equal(expected.Text, answers[i]);
            }
            Assert.Contains("r4", (await host.Engine.ResidencyAsync()).Resident);
            using var unknown = await http.PostAsJsonAsync("/v1/completions", new JsonObject { ["model"] = "r9", ["prompt"] = "x" });
            Assert.Equal(404, (int)unknown.StatusCode);
        }
        finally
        {
            await host.StopAsync();
        }
    }

    [Fact]
    public void BadSlotOptionsExitTwoWithOneLineBeforeTheModelLoads()
    {
        string a = kit.DirOf("r0"), b = kit.DirOf("r1");
        (string[] Args, string Says)[] cases =
        [
            (["--max-loras", "0"], "--max-loras must be at least 1 (got 0)"),
            (["--max-cpu-loras", "-1"], "--max-cpu-loras must be at least 0 (got -1)"),
            (["--max-loras", "1", "--adapter", $"a={a}:pin", "--adapter", $"b={b}:pin"], "pins 2 adapters but --max-loras 1"),
            (["--max-loras", "1", "--adapter", $"a={a}:pin", "--adapter", $"b={b}"], "the unpinned adapters could never run"),
        ];
        foreach (var (args, says) in cases)
        {
            var (code, output) = CliProcess.Run(TimeSpan.FromMinutes(1), ["serve", "--model", "/no/such/model", .. args]);
            Assert.True(code == 2, $"{string.Join(' ', args)}: exit {code}: {output}");
            Assert.Contains(says, output);
            Assert.Single(output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        }
    }
}
