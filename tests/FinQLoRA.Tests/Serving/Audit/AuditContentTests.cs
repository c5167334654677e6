using System.Net.Http.Json;
using System.Text.Json.Nodes;
using FinQLoRA.Loading;
using FinQLoRA.Server;
using FinQLoRA.Server.Audit;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Serving.Audit;

/// <summary>With <c>--audit-content</c> a line carries the prompts and the completions' text as the answer gave them
/// (a stream's text put together from its chunks); without it, none (<see cref="AuditServerTests"/>).</summary>
public sealed class AuditContentTests
{
    [Fact]
    public async Task WithAuditContentALineCarriesThePromptsAndTheTextAnswered()
    {
        using var dir = new TempFolder();
        string file = dir.PathOf("audit.jsonl");
        await using var host = ServerHost.Open(new ServerHostOptions
        {
            ModelPath = SeededLlama.Folder, Load = new ModelLoadOptions { DType = ScalarType.Float32 },
            Server = new ServerOptions { ServedModelName = "s", Port = 0, AuditLog = new AuditLogOptions { Path = file, IncludeContent = true } },
            MaxBatch = 4, MaxModelLen = 64,
        });
        await host.StartAsync();
        using var http = new HttpClient { BaseAddress = host.Url };

        using var plain = await http.PostAsJsonAsync("/v1/completions",
            new { model = "s", prompt = new[] { "Once upon a time", "The dog" }, max_tokens = 5, temperature = 0 });
        var answer = JsonNode.Parse(await plain.Content.ReadAsStringAsync())!;
        var line = await AuditLines.OfAsync(file, plain.Headers.GetValues("x-request-id").Single());
        Assert.Equal(["Once upon a time", "The dog"], line.GetProperty("prompt").EnumerateArray().Select(p => p.GetString()));
        Assert.Equal(answer["choices"]!.AsArray().Select(c => c!["text"]!.GetValue<string>()),
            line.GetProperty("completion").EnumerateArray().Select(c => c.GetString()));

        using var streamed = await http.PostAsJsonAsync("/v1/completions",
            new { model = "s", prompt = "Lily went", max_tokens = 6, temperature = 0, stream = true });
        string text = string.Concat((await streamed.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
            .Select(c => c["data: ".Length..]).Where(c => c != "[DONE]").Select(c => JsonNode.Parse(c)!["choices"]![0]!["text"]!.GetValue<string>()));
        line = await AuditLines.OfAsync(file, streamed.Headers.GetValues("x-request-id").Single());
        Assert.Equal(["Lily went"], line.GetProperty("prompt").EnumerateArray().Select(p => p.GetString()));
        Assert.Equal([text], line.GetProperty("completion").EnumerateArray().Select(c => c.GetString()));
        await host.StopAsync();
    }
}
