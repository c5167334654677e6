using System.Net.Http.Json;
using System.Text.Json.Nodes;
using FinQLoRA.Tests.Serving.Decisions;
using FinQLoRA.Tests.Support;
using static Microsoft.Playwright.Assertions;

namespace FinQLoRA.Tests.Serving.ConsolePage;

/// <summary>
/// The console page on a server without an API key whose model has no chat template (the seeded stories model): it
/// never asks for a key, and the chat box falls back to a streamed plain completion of the text, equal to what
/// <c>/v1/completions</c> answers for the same greedy request on the chosen adapter.
/// </summary>
[Collection(ChromiumCollection.Name)]
public sealed class ConsolePageWithoutKeyOrTemplateTests(DecisionsFixture f) : IClassFixture<DecisionsFixture>
{
    [ChromiumFact]
    public async Task ChatFallsBackToACompletionAndNoKeyIsAskedFor()
    {
        const string prompt = "Once upon a time, Lily went to the park";
        const int maxTokens = 10;
        await using var browser = await ChromiumBrowser.LaunchAsync();
        var page = await browser.NewPageAsync();
        await page.GotoAsync(f.Url.ToString());
        await page.Locator($"#model-list li[data-model='{DecisionsFixture.Adapter}']").WaitForAsync();
        Assert.Contains("no lineage.json", await page.Locator($"#model-list li[data-model='{DecisionsFixture.Adapter}']").InnerTextAsync());

        await page.SelectOptionAsync("#chat-model", DecisionsFixture.Adapter);
        await page.FillAsync("#chat-temperature", "0");
        await page.FillAsync("#chat-max-tokens", $"{maxTokens}");
        await page.FillAsync("#chat-input", prompt);
        await page.PressAsync("#chat-input", "Enter"); // Enter sends
        var answer = page.Locator(".message.assistant").First;
        await Expect(answer).ToHaveAttributeAsync("data-state", new System.Text.RegularExpressions.Regex("^(done|failed)$"));
        string status = (await page.Locator("#chat-status").TextContentAsync())!;
        Assert.True(await answer.GetAttributeAsync("data-state") == "done", status);
        Assert.Contains("plain completion", status);

        var body = new JsonObject { ["model"] = DecisionsFixture.Adapter, ["prompt"] = prompt, ["temperature"] = 0, ["max_tokens"] = maxTokens };
        using var response = await f.Http.PostAsJsonAsync("/v1/completions", body);
        response.EnsureSuccessStatusCode();
        string expected = (await response.Content.ReadFromJsonAsync<JsonObject>())!["choices"]![0]!["text"]!.GetValue<string>();
        Assert.NotEqual("", expected);
        Assert.Equal(expected, await answer.Locator(".text").TextContentAsync());

        Assert.True(await page.Locator("#key-panel").IsHiddenAsync());
        await Expect(page.Locator("#fig-running")).ToHaveTextAsync(new System.Text.RegularExpressions.Regex(@"^\d+$"));
        Assert.Empty(browser.Problems);
    }
}
