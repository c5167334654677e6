using System.ClientModel;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using FinQLoRA.Tests.Support;
using Microsoft.Playwright;
using OpenAI.Chat;
using static Microsoft.Playwright.Assertions;

namespace FinQLoRA.Tests.Serving.ConsolePage;

/// <summary>
/// The console page in headless Chromium against a real server behind a key: the page asks for the key (again when it
/// is wrong), lists the models with the adapter's lineage, streams a chat answer piece by piece that equals the official
/// OpenAI client's greedy answer (on the base, then on an adapter with the conversation so far), draws one bar per
/// option of a choice question whose width over its track is the API's probability, and shows live figures from /metrics.
/// </summary>
[Collection(ChromiumCollection.Name)]
public sealed class ConsolePageTests(ConsoleFixture f) : IClassFixture<ConsoleFixture>
{
    // The base answers this one in several readable pieces (the seeded adapter's answers are mostly bytes of no whole
    // character, which the server holds back until the end).
    private const string FirstQuestion = "Is cash an asset?";
    private const string SecondQuestion = "What is a bond?";
    private const int MaxTokens = 12;

    /// <summary>Records every text the newest assistant message shows, so that the test sees the answer grow.</summary>
    private const string WatchAnswers = """
        () => {
          window.answerSnapshots = [];
          new MutationObserver(records => {
            for (const r of records) {
              const text = r.target.closest && r.target.closest(".message.assistant .text");
              if (text) window.answerSnapshots.push(text.textContent);
            }
          }).observe(document.getElementById("chat-log"), { subtree: true, childList: true, characterData: true });
        }
        """;

    private const string ReadBars = """
        () => [...document.querySelectorAll("#decision-result .option-row")].map(row => ({
          option: row.dataset.option,
          ratio: row.querySelector(".bar").getBoundingClientRect().width / row.querySelector(".bar-track").getBoundingClientRect().width,
          track: row.querySelector(".bar-track").getBoundingClientRect().width,
          chosen: row.classList.contains("chosen"),
        }))
        """;

    private sealed record Bar(string Option, double Ratio, double Track, bool Chosen);

    [ChromiumFact]
    public async Task AsksForTheKeyListsLineageStreamsChatDrawsDecisionBarsAndShowsFigures()
    {
        await using var browser = await ChromiumBrowser.LaunchAsync();
        var page = await browser.NewPageAsync();
        await page.GotoAsync(f.Url.ToString());

        // The key: asked for on the first 401, asked again when refused, then used for every call.
        await Expect(page.Locator("#key-panel")).ToBeVisibleAsync();
        await page.FillAsync("#key-input", "sk-wrong");
        await page.ClickAsync("#key-submit");
        await Expect(page.Locator("#key-message")).ToContainTextAsync("refused");
        await Expect(page.Locator("#key-panel")).ToBeVisibleAsync();
        await page.FillAsync("#key-input", ConsoleFixture.Key);
        await page.ClickAsync("#key-submit");
        await Expect(page.Locator("#key-panel")).ToBeHiddenAsync();

        // Models and lineage: the recorded hashes of the adapter's weights and of the base's weights it was trained on.
        var lineageItem = page.Locator($"#model-list li[data-model='{ConsoleFixture.WithLineage}']");
        await lineageItem.WaitForAsync();
        string lineageText = await lineageItem.InnerTextAsync();
        Assert.Contains(Sha256(Path.Combine(f.LineageAdapterDir, "adapter_model.safetensors")), lineageText);
        Assert.Contains(Sha256(Path.Combine(f.ModelDir, "model.safetensors")), lineageText);
        Assert.Contains(Sha256(f.DataFile), lineageText);
        Assert.Contains("commit 0123456789abcdef", lineageText);
        Assert.Contains("no lineage.json", await page.Locator($"#model-list li[data-model='{ConsoleFixture.WithoutLineage}']").InnerTextAsync());
        Assert.Contains("base model", await page.Locator($"#model-list li[data-model='{ConsoleFixture.ModelName}']").InnerTextAsync());

        // Chat on the base, then on the adapter with the conversation so far: each answer streamed, equal to the API's.
        await page.EvaluateAsync(WatchAnswers);
        await page.FillAsync("#chat-temperature", "0");
        await page.FillAsync("#chat-max-tokens", $"{MaxTokens}");
        await page.SelectOptionAsync("#chat-model", ConsoleFixture.ModelName);
        string first = await ChatAsync(page, FirstQuestion, 1);
        var conversation = new List<ChatMessage> { new UserChatMessage(FirstQuestion) };
        Assert.Equal(Reference(ConsoleFixture.ModelName, conversation), first);
        var snapshots = await page.EvaluateAsync<string[]>("() => window.answerSnapshots");
        Assert.True(snapshots.Count(s => s.Length > 0) >= 2, $"the answer appeared at once, not streamed: [{string.Join(" | ", snapshots)}]");
        Assert.All(snapshots, s => Assert.StartsWith(s, first));

        await page.SelectOptionAsync("#chat-model", ConsoleFixture.WithLineage);
        string second = await ChatAsync(page, SecondQuestion, 2);
        conversation.AddRange([new AssistantChatMessage(first), new UserChatMessage(SecondQuestion)]);
        Assert.Equal(Reference(ConsoleFixture.WithLineage, conversation), second);
        Assert.NotEqual(Reference(ConsoleFixture.ModelName, conversation), second); // the choice of adapter mattered

        // A choice question: one bar per option, its width the API's probability.
        // Options this seeded adapter finds about equally likely (0.27, 0.33, 0.40), so that every width is a partial one.
        const string input = "Shares of the bank jumped 9% after results.", question = "What should an investor do?";
        string[] options = ["buy", "hold", "sell"];
        await page.SelectOptionAsync("#decision-model", ConsoleFixture.WithLineage);
        await page.FillAsync("#decision-input", input);
        await page.FillAsync("#decision-question", question);
        await page.FillAsync("#decision-options", string.Join("\n", options));
        await page.ClickAsync("#decision-ask");
        await Expect(page.Locator("#decision-result .option-row")).ToHaveCountAsync(options.Length);
        var bars = JsonSerializer.Deserialize<Bar[]>(await page.EvaluateAsync<JsonElement>(ReadBars), new JsonSerializerOptions(JsonSerializerDefaults.Web))!;
        var expected = await DecisionProbabilitiesAsync(ConsoleFixture.WithLineage, input, question, options);
        Assert.Equal(options, bars.Select(b => b.Option));
        Assert.True(expected.All(p => p is > 0.05 and < 0.95) && expected.Max() - expected.Min() > 0.05,
            $"probabilities {string.Join(", ", expected)}: bars of 0, 100 % or equal widths would prove little");
        foreach (var (bar, p) in bars.Zip(expected))
        {
            Assert.True(bar.Track > 100, $"the track is only {bar.Track} px wide");
            Assert.Equal(p, bar.Ratio, 0.005);
        }
        Assert.Equal(Array.IndexOf(expected, expected.Max()), Array.FindIndex(bars, b => b.Chosen));

        // Live figures: the gauges read, and after the chats a token rate and a time to first token.
        await Expect(page.Locator("#fig-running")).ToHaveTextAsync(new Regex(@"^\d+$"));
        await Expect(page.Locator("#fig-waiting")).ToHaveTextAsync(new Regex(@"^\d+$"));
        await Expect(page.Locator("#fig-tokens")).ToHaveTextAsync(new Regex(@"^\d+\.\d$"));
        await Expect(page.Locator("#fig-ttft")).ToHaveTextAsync(new Regex(@"^\d+ ms"));

        Assert.Empty(browser.Problems);
    }

    /// <summary>Sends <paramref name="text"/> and waits for the <paramref name="turn"/>-th answer to finish.</summary>
    private static async Task<string> ChatAsync(IPage page, string text, int turn)
    {
        await page.FillAsync("#chat-input", text);
        await page.ClickAsync("#chat-send");
        var answer = page.Locator(".message.assistant").Nth(turn - 1);
        await Expect(answer).ToHaveAttributeAsync("data-state", new Regex("^(done|failed)$"));
        string state = (await answer.GetAttributeAsync("data-state"))!;
        Assert.True(state == "done", $"the chat failed: {await page.Locator("#chat-status").TextContentAsync()}");
        return (await answer.Locator(".text").TextContentAsync())!;
    }

    /// <summary>The official client's greedy answer, non-streamed.</summary>
    private string Reference(string model, List<ChatMessage> conversation)
    {
        var client = new ChatClient(model, new ApiKeyCredential(ConsoleFixture.Key), new OpenAI.OpenAIClientOptions { Endpoint = new Uri(f.Url, "v1") });
        var completion = client.CompleteChat(conversation, new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = MaxTokens }).Value;
        return completion.Content.Count == 0 ? "" : completion.Content[0].Text;
    }

    private async Task<double[]> DecisionProbabilitiesAsync(string model, string input, string question, string[] options)
    {
        var body = new JsonObject
        {
            ["model"] = model, ["input"] = input,
            ["questions"] = new JsonArray(new JsonObject
            {
                ["type"] = "choice", ["instructions"] = question,
                ["choices"] = new JsonArray(options.Select(o => (JsonNode)new JsonObject { ["value"] = o }).ToArray()),
            }),
        };
        using var response = await f.Http.PostAsJsonAsync("/v1/decisions", body);
        response.EnsureSuccessStatusCode();
        var answer = (await response.Content.ReadFromJsonAsync<JsonObject>())!["answers"]![0]!;
        return answer["probabilities"]!.AsArray().Select(p => p!["probability"]!.GetValue<double>()).ToArray();
    }

    private static string Sha256(string file) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(file)));
}
