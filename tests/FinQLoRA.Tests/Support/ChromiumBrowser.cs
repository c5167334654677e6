using Microsoft.Playwright;

namespace FinQLoRA.Tests.Support;

/// <summary>
/// Headless Chromium for browser tests: the system's own binary, started by Playwright's driver (shipped in the
/// Microsoft.Playwright package), never a browser Playwright downloads. Records what would otherwise pass unseen: script
/// errors on the page and Content-Security-Policy refusals.
/// </summary>
public sealed class ChromiumBrowser : IAsyncDisposable
{
    /// <summary>Where Debian's <c>chromium</c> package puts the browser.</summary>
    public const string ExecutablePath = "/usr/bin/chromium";

    private readonly IPlaywright _playwright;
    private readonly IBrowser _browser;

    private ChromiumBrowser(IPlaywright playwright, IBrowser browser)
    {
        _playwright = playwright;
        _browser = browser;
    }

    /// <summary>Uncaught script errors and console lines about refused content, from every page opened here.</summary>
    public List<string> Problems { get; } = [];

    public static async Task<ChromiumBrowser> LaunchAsync()
    {
        var playwright = await Playwright.CreateAsync();
        try
        {
            var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
            {
                ExecutablePath = ExecutablePath, Headless = true,
                // --no-sandbox: test runners are often root, where Chromium's sandbox refuses to start; the page is our own.
                Args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
            });
            return new ChromiumBrowser(playwright, browser);
        }
        catch
        {
            playwright.Dispose();
            throw;
        }
    }

    /// <summary>A new page with a generous timeout (two slow cores decode while the browser runs).</summary>
    public async Task<IPage> NewPageAsync()
    {
        var page = await _browser.NewPageAsync();
        page.SetDefaultTimeout(60_000);
        page.PageError += (_, error) => { lock (Problems) Problems.Add("page error: " + error); };
        page.Console += (_, message) =>
        {
            if (message.Text.Contains("Content Security Policy", StringComparison.OrdinalIgnoreCase) || message.Text.StartsWith("Refused to", StringComparison.Ordinal))
                lock (Problems) Problems.Add("console: " + message.Text);
        };
        return page;
    }

    public async ValueTask DisposeAsync()
    {
        await _browser.DisposeAsync();
        _playwright.Dispose();
    }
}
