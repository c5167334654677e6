using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using FinQLoRA.Tests.Serving.Audit;
using Xunit.Abstractions;

namespace FinQLoRA.Tests.Serving.Load;

/// <summary>
/// A bank's day in small (issue 24's load test): 64 clients over three desks' keys hit one server that registers 64
/// adapters and holds 8 on the device, asking for their own adapters, for another desk's, and sending malformed bodies
/// among the good ones. Bounded (a fixed number of requests, loopback only) and seeded, so a failure replays.
/// What must hold: no 5xx; no answer under another desk's adapter (each such request is the 404 of a model that does not
/// exist, and every 200 names the model asked for); and the audit log has exactly one line per request, under the
/// key that sent it, with the adapter asked for and the sha256 of that adapter's weights.
/// </summary>
public sealed class MixedTenantLoadTests(LoadServeFixture f, ITestOutputHelper output) : IClassFixture<LoadServeFixture>
{
    private const int Clients = 64;
    private const int RequestsPerClient = 6;

    private const string LoneSurrogate = "lone-surrogate";

    private enum Kind { Own, OtherDesks, Malformed }

    private sealed record Sent(string RequestId, string KeyId, string Model, Kind Kind, int Status, string? AnsweredModel);

    [Fact]
    public async Task SixtyFourClientsOverThreeKeysAndSixtyFourAdaptersGetNo5xxNoCrossTenantAnswerAndOneAuditLineEach()
    {
        var sent = new ConcurrentBag<Sent>();
        using var http = new HttpClient { BaseAddress = f.Url, Timeout = TimeSpan.FromMinutes(5) };
        await Task.WhenAll(Enumerable.Range(0, Clients).Select(c => Task.Run(async () =>
        {
            var random = new Random(1000 + c);
            string keyId = LoadServeFixture.Desks[c % LoadServeFixture.Desks.Length];
            for (int i = 0; i < RequestsPerClient; i++)
            {
                var kind = random.Next(6) switch { 0 => Kind.Malformed, 1 => Kind.OtherDesks, _ => Kind.Own };
                string model = kind == Kind.OtherDesks ? f.OtherDesksModel(keyId, random) : f.OwnModel(keyId, random);
                sent.Add(await SendAsync(http, keyId, model, kind, random));
            }
        })));

        var all = sent.ToList();
        output.WriteLine($"{all.Count} requests: {all.Count(s => s.Kind == Kind.Own)} own, {all.Count(s => s.Kind == Kind.OtherDesks)} for another desk's adapter, {all.Count(s => s.Kind == Kind.Malformed)} malformed; adapter reads from disk: {f.Engine.AdapterReads}");
        Assert.Equal(Clients * RequestsPerClient, all.Count);
        Assert.DoesNotContain(all, s => s.Status >= 500);
        foreach (var s in all)
        {
            switch (s.Kind)
            {
                case Kind.Own:
                    Assert.True(s.Status == 200, $"{s.KeyId} asking for its own {s.Model} got {s.Status}");
                    Assert.Equal(s.Model, s.AnsweredModel);
                    break;
                case Kind.OtherDesks:
                    Assert.True(s.Status == 404, $"{s.KeyId} asking for another desk's {s.Model} got {s.Status}");
                    break;
                case Kind.Malformed:
                    Assert.True(s.Status == 400, $"{s.KeyId}'s malformed request got {s.Status}");
                    break;
            }
        }
        // Many adapters took turns in the 8 slots: the residency, not a fixed set, served them.
        Assert.True(all.Where(s => s.Kind == Kind.Own && s.Model != LoadServeFixture.BaseName).Select(s => s.Model).Distinct().Count() > 8 * 2);

        var lines = await AuditedAsync(all.Count);
        var byId = lines.GroupBy(l => l.GetProperty("request_id").GetString()!).ToDictionary(g => g.Key, g => g.ToList());
        foreach (var s in all)
        {
            Assert.True(byId.TryGetValue(s.RequestId, out var mine) && mine.Count == 1, $"request {s.RequestId} has {(mine?.Count ?? 0)} audit lines");
            var line = mine![0];
            Assert.Equal(s.KeyId, line.GetProperty("key_id").GetString());
            Assert.Equal(s.Status, line.GetProperty("status").GetInt32());
            if (s.Kind != Kind.Own) continue;
            string? adapter = s.Model == LoadServeFixture.BaseName ? null : s.Model;
            Assert.Equal(adapter, line.GetProperty("adapter").GetString());
            Assert.Equal(adapter is null ? null : f.WeightsSha256(adapter), line.GetProperty("adapter_sha256").GetString());
        }
        Assert.Equal(all.Count, lines.Count);
    }

    private async Task<Sent> SendAsync(HttpClient http, string keyId, string model, Kind kind, Random random)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, random.Next(2) == 0 ? "/v1/completions" : "/v1/chat/completions");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", f.Keys[keyId]);
        bool chat = request.RequestUri!.OriginalString.Contains("chat", StringComparison.Ordinal);
        var body = chat
            ? new JsonObject { ["model"] = model, ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Is the outlook for rates stable?" }) }
            : new JsonObject { ["model"] = model, ["prompt"] = "The bank said" };
        body["max_tokens"] = random.Next(1, 5);
        body["temperature"] = 0;
        if (kind == Kind.Malformed)
        {
            // one of the ways a client gets a body wrong; each is a 400 whichever model it names
            switch (random.Next(4))
            {
                case 0: body["max_tokens"] = "four"; break;
                case 1: body["temperature"] = -1; break;
                case 2: body["model"] = LoneSurrogate; break;
                default: body[chat ? "messages" : "prompt"] = new JsonObject(); break;
            }
        }
        // System.Text.Json will not write a lone surrogate, so it goes into the text as the escape a client could send
        string json = body.ToJsonString().Replace($"\"{LoneSurrogate}\"", "\"\\ud800\"", StringComparison.Ordinal);
        request.Content = new StringContent(json, Encoding.UTF8, "application/json");
        using var response = await http.SendAsync(request);
        string text = await response.Content.ReadAsStringAsync();
        string? answered = response.IsSuccessStatusCode ? JsonNode.Parse(text)?["model"]?.GetValue<string>() : null;
        return new Sent(response.Headers.GetValues("x-request-id").Single(), keyId, model, kind, (int)response.StatusCode, answered);
    }

    /// <summary>The audit log once it holds a line for every request (the writer thread appends after the answers).</summary>
    private async Task<List<JsonElement>> AuditedAsync(int requests)
    {
        for (int attempt = 0; attempt < 600; attempt++)
        {
            var lines = AuditLines.Read(f.AuditPath);
            if (lines.Count >= requests) return lines;
            await Task.Delay(100);
        }
        return AuditLines.Read(f.AuditPath);
    }
}
