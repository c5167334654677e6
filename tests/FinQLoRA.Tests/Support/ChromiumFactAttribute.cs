namespace FinQLoRA.Tests.Support;

/// <summary>A test that drives Debian's Chromium (<see cref="ChromiumBrowser.ExecutablePath"/>) through Playwright:
/// skipped with the install command when it is missing, except under CI=true, where it runs (and fails).</summary>
public sealed class ChromiumFactAttribute : FactAttribute
{
    public ChromiumFactAttribute()
    {
        if (!File.Exists(ChromiumBrowser.ExecutablePath) && !Shared.IsCi)
            Skip = $"needs Debian's Chromium at {ChromiumBrowser.ExecutablePath}: apt-get install chromium (or .ci/install-deps.sh)";
    }
}
