using System.ClientModel;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using FinQLoRA.Server;
using FinQLoRA.Training;
using OpenAI.Models;

namespace FinQLoRA.Tests.Serving.ConsolePage;

/// <summary>
/// <c>finqlora_lineage</c> on <c>/v1/models</c>: an adapter's lineage.json as it was when the adapter loaded (at start or
/// at run time), null for the base and for an adapter without one; the official OpenAI client still reads the list;
/// a damaged lineage.json is refused naming the file.
/// </summary>
public sealed class ModelLineageTests(ConsoleFixture f) : IClassFixture<ConsoleFixture>
{
    private async Task<Dictionary<string, JsonNode>> CardsAsync()
    {
        var list = await f.Http.GetFromJsonAsync<JsonObject>("/v1/models");
        return list!["data"]!.AsArray().ToDictionary(c => c!["id"]!.GetValue<string>(), c => c!);
    }

    [Fact]
    public async Task AnAdapterCarriesItsLineageAsRecorded()
    {
        var cards = await CardsAsync();
        Assert.True(JsonNode.DeepEquals(f.Lineage, cards[ConsoleFixture.WithLineage]["finqlora_lineage"]));
        // The recorded hash is the adapter file's (checked with .NET's SHA-256, not our hashing helper).
        string weights = Path.Combine(f.LineageAdapterDir, "adapter_model.safetensors");
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(weights))),
            cards[ConsoleFixture.WithLineage]["finqlora_lineage"]!["adapter_files"]!["adapter_model.safetensors"]!.GetValue<string>());
        Assert.Equal(JsonValueKind.Null, cards[ConsoleFixture.WithoutLineage]["finqlora_lineage"]?.GetValueKind() ?? JsonValueKind.Null);
        Assert.True(cards[ConsoleFixture.WithoutLineage].AsObject().ContainsKey("finqlora_lineage"));
        Assert.Null(cards[ConsoleFixture.ModelName]["finqlora_lineage"]);

        var one = await f.Http.GetFromJsonAsync<JsonObject>($"/v1/models/{ConsoleFixture.WithLineage}");
        Assert.True(JsonNode.DeepEquals(f.Lineage, one!["finqlora_lineage"]));
    }

    [Fact]
    public void TheOfficialClientStillReadsTheList()
    {
        var client = new OpenAIModelClient(new ApiKeyCredential(ConsoleFixture.Key), new OpenAI.OpenAIClientOptions { Endpoint = new Uri(f.Url, "v1") });
        var ids = client.GetModels().Value.Select(m => m.Id).ToList();
        Assert.Contains(ConsoleFixture.ModelName, ids);
        Assert.Contains(ConsoleFixture.WithLineage, ids);
        Assert.Contains(ConsoleFixture.WithoutLineage, ids);
    }

    [Fact]
    public async Task AnAdapterLoadedAtRunTimeShowsItsLineageUntilUnloaded()
    {
        const string name = "fin-runtime";
        using (var load = await f.Http.PostAsJsonAsync("/v1/load_lora_adapter", new JsonObject { ["lora_name"] = name, ["lora_path"] = ConsoleFixture.WithLineage }))
            Assert.Equal(HttpStatusCode.OK, load.StatusCode);
        Assert.True(JsonNode.DeepEquals(f.Lineage, (await CardsAsync())[name]["finqlora_lineage"]));
        using (var unload = await f.Http.PostAsJsonAsync("/v1/unload_lora_adapter", new JsonObject { ["lora_name"] = name }))
            Assert.Equal(HttpStatusCode.OK, unload.StatusCode);
        Assert.False((await CardsAsync()).ContainsKey(name));
    }

    [Fact]
    public async Task ADamagedLineageIsRefusedAtRunTimeNamingTheField()
    {
        string damaged = Path.Combine(f.AdapterRoot, "damaged");
        Directory.CreateDirectory(damaged);
        foreach (string file in Directory.GetFiles(f.LineageAdapterDir)) File.Copy(file, Path.Combine(damaged, Path.GetFileName(file)));
        File.WriteAllText(Path.Combine(damaged, RunLineage.FileName), "{\"finqlora_version\": ");
        using var load = await f.Http.PostAsJsonAsync("/v1/load_lora_adapter", new JsonObject { ["lora_name"] = "damaged", ["lora_path"] = "damaged" });
        Assert.Equal(HttpStatusCode.BadRequest, load.StatusCode);
        var error = (await load.Content.ReadFromJsonAsync<JsonObject>())!["error"]!;
        Assert.Equal("lora_path", error["param"]!.GetValue<string>());
        Assert.Contains("lineage.json", error["message"]!.GetValue<string>());
        Assert.DoesNotContain(f.AdapterRoot, error["message"]!.GetValue<string>()); // the server's folders stay private
        Assert.False((await CardsAsync()).ContainsKey("damaged"));
    }

    [Theory]
    [InlineData("{\"finqlora_version\": ", "not valid JSON")]
    [InlineData("[1, 2]", "must be a JSON object")]
    public void ADamagedLineageIsRefusedAtStartBeforeTheModelLoads(string content, string why)
    {
        string adapter = Path.Combine(f.Dir, "damaged-at-start-" + why.Length);
        Directory.CreateDirectory(adapter);
        foreach (string file in Directory.GetFiles(f.LineageAdapterDir)) File.Copy(file, Path.Combine(adapter, Path.GetFileName(file)), overwrite: true);
        File.WriteAllText(Path.Combine(adapter, RunLineage.FileName), content);
        var e = Assert.Throws<UserInputException>(() => ServerHost.Open(new ServerHostOptions
        {
            ModelPath = f.ModelDir, Adapters = [("x", adapter)],
            Server = new ServerOptions { ServedModelName = "m", Port = 0 },
        }));
        Assert.Contains(Path.Combine(adapter, RunLineage.FileName), e.Message);
        Assert.Contains(why, e.Message);
        Assert.Contains("remove the file", e.Message);
    }
}
