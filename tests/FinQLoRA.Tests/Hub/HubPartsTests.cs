using FinQLoRA.Hub;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Hub;

/// <summary>The pure parts of the Hub client: URL layout, include patterns, listing parsing, settings from the environment.</summary>
public sealed class HubPartsTests
{
    [Fact]
    public void RepoUrls_FollowTheHubLayout()
    {
        HubRepo model = HubRepo.Create(HubRepoType.Model, "meta-llama/Llama-3.1-8B-Instruct");
        HubRepo data = HubRepo.Create(HubRepoType.Dataset, "takala/financial_phrasebank", "refs/convert/parquet");
        Assert.Equal("api/models/meta-llama/Llama-3.1-8B-Instruct/tree/main?recursive=true", model.TreeUrl);
        Assert.Equal("meta-llama/Llama-3.1-8B-Instruct/resolve/main/original/params.json", model.ResolveUrl("original/params.json"));
        Assert.Equal("api/datasets/takala/financial_phrasebank/tree/refs%2Fconvert%2Fparquet?recursive=true", data.TreeUrl);
        Assert.Equal("datasets/takala/financial_phrasebank/resolve/refs%2Fconvert%2Fparquet/a%20b/c%23.parquet", data.ResolveUrl("a b/c#.parquet"));
    }

    [Theory]
    [InlineData("")]
    [InlineData("a/b/c")]
    [InlineData("../etc")]
    [InlineData("owner/na me")]
    [InlineData("a/.")]
    [InlineData(".")]
    [InlineData("a/.hidden")]
    [InlineData("-a/b")]
    [InlineData("a/b-")]
    [InlineData("a--b/c")]
    [InlineData("a/b.git")]
    [InlineData("a/b\nc")]
    [InlineData("a/b\u0000")]
    [InlineData("a/")]
    [InlineData("/b")]
    public void BadRepoIds_AreRefusedWithAnExample(string id)
    {
        var error = Assert.Throws<UserInputException>(() => HubRepo.Create(HubRepoType.Dataset, id));
        Assert.Contains("FinGPT/fingpt-sentiment-train", error.Message);
        Assert.DoesNotContain('\n', error.Message);
        Assert.DoesNotContain('\0', error.Message);
    }

    [Fact]
    public void RepoIdParts_MayHave96CharactersNotMore()
    {
        string part96 = "a" + new string('b', 94) + "c";
        Assert.Equal($"{part96}/{part96}", HubRepo.Create(HubRepoType.Model, $"{part96}/{part96}").Id);
        var error = Assert.Throws<UserInputException>(() => HubRepo.Create(HubRepoType.Model, $"acme/{part96}x"));
        Assert.Contains("a part of 97 characters; the Hub allows 96", error.Message);
        Assert.Throws<UserInputException>(() => HubRepo.Create(HubRepoType.Model, $"{part96}x/model"));
    }

    [Theory]
    [InlineData("gpt2")]
    [InlineData("_org/_name_")]
    [InlineData("FinGPT/fingpt-sentiment-train")]
    [InlineData("TheBloke/Llama-2-7B-GGUF")]
    [InlineData("a.b/c.d")]
    public void HubStyleRepoIds_AreAccepted(string id) => Assert.Equal(id, HubRepo.Create(HubRepoType.Model, id).Id);

    [Theory]
    [InlineData(".")]
    [InlineData("..")]
    [InlineData("")]
    [InlineData("main\n")]
    [InlineData("ma\rin")]
    [InlineData("refs/../main")]
    [InlineData("refs/.hidden")]
    [InlineData("/main")]
    [InlineData("main/")]
    [InlineData("refs//pr")]
    [InlineData("feature.lock")]
    [InlineData("a b")]
    [InlineData("a:b")]
    [InlineData("@")]
    [InlineData("main@{1}")]
    [InlineData("v1.")]
    public void BadRevisions_AreRefusedBeforeAnyRequest(string revision)
    {
        var error = Assert.Throws<UserInputException>(() => HubRepo.Create(HubRepoType.Model, "acme/model", revision));
        Assert.StartsWith("--revision '", FinQLoRA.Cli.FlagNames.Render(error));
        Assert.DoesNotContain('\n', error.Message);
        Assert.DoesNotContain('\r', error.Message);
    }

    [Theory]
    [InlineData("main")]
    [InlineData("refs/pr/1")]
    [InlineData("refs/convert/parquet")]
    [InlineData("v1.0")]
    [InlineData("0123456789abcdef0123456789abcdef01234567")]
    public void GitRefNames_AreAcceptedAsRevisions(string revision) =>
        Assert.Equal(revision, HubRepo.Create(HubRepoType.Model, "acme/model", revision).Revision);

    [Theory]
    [InlineData("*.json", "config.json", true)]
    [InlineData("*.json", "original/params.json", true)]
    [InlineData("tokenizer*", "tokenizer_config.json", true)]
    [InlineData("tokenizer*", "original/tokenizer.model", false)]
    [InlineData("*.safetensors", "model.safetensors.index.json", false)]
    [InlineData("data/", "data/train-00000.parquet", true)]
    [InlineData("data/", "other/data.parquet", false)]
    [InlineData("train-0000[0-2].parquet", "train-00001.parquet", true)]
    [InlineData("train-0000[!0-2].parquet", "train-00001.parquet", false)]
    [InlineData("a?c.txt", "abc.txt", true)]
    [InlineData("a.c", "abc", false)]
    public void IncludePatterns_MatchLikeHuggingfaceHub(string pattern, string path, bool matches) =>
        Assert.Equal(matches, new GlobPattern(pattern).Matches(path));

    [Fact]
    public void Listing_KeepsFilesTakesLfsSha256AndSkipsFolders()
    {
        const string json = """
            [{"type":"directory","oid":"d","size":0,"path":"data"},
             {"type":"file","oid":"8b1a9953c4611296a827abf8c47804d7e6c49c6b","size":12,"path":"README.md"},
             {"type":"file","oid":"aa","size":5000,"path":"data/train.parquet",
              "lfs":{"oid":"9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08","size":5000,"pointerSize":134}}]
            """;
        var files = HubClient.ParseListing(new Uri("http://x/"), json).ToList();
        Assert.Equal(2, files.Count);
        Assert.False(files[0].IsLfs);
        Assert.Equal("8b1a9953c4611296a827abf8c47804d7e6c49c6b", files[0].ContentId);
        Assert.Equal("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", files[1].ContentId);
        Assert.Equal(5000, files[1].Size);
    }

    [Theory]
    [InlineData("<html>proxy login</html>", "not JSON")]
    [InlineData("{\"error\":\"x\"}", "expected a JSON array")]
    [InlineData("[{\"type\":\"file\",\"oid\":\"a\",\"size\":1}]", "has no 'path'")]
    [InlineData("[{\"type\":\"file\",\"oid\":\"a\",\"size\":1,\"path\":\"x\",\"lfs\":{\"oid\":\"short\",\"size\":1}}]", "without a sha256")]
    public void MalformedListing_NamesTheProblemAndHfEndpoint(string json, string expected)
    {
        var error = Assert.Throws<UserInputException>(() => HubClient.ParseListing(new Uri("http://x/api"), json).ToList());
        Assert.Contains(expected, error.Message);
        Assert.Contains("HF_ENDPOINT", error.Message);
    }

    [Theory]
    [InlineData("../../etc/passwd")]
    [InlineData("/abs")]
    [InlineData("a//b")]
    [InlineData("a\\b")]
    [InlineData("a\nb")]
    [InlineData("a\u007fb")]
    [InlineData(".")]
    public void UnsafeListedPaths_AreRefused(string path)
    {
        HubRepo repo = HubRepo.Create(HubRepoType.Dataset, "a/b");
        var cache = new HubCache(Path.GetTempPath());
        Assert.Throws<UserInputException>(() => cache.FilePath(repo, new HubFile(path, 1, "x", null)));
    }

    [Fact]
    public void Settings_ComeFromTheEnvironment()
    {
        var env = new Dictionary<string, string> { ["HF_ENDPOINT"] = "https://hf-mirror.example/prefix", ["HF_TOKEN"] = "hf_x", ["XDG_CACHE_HOME"] = "/tmp/xdg" };
        HubSettings s = HubSettings.FromEnvironment(k => env.GetValueOrDefault(k));
        Assert.Equal("https://hf-mirror.example/prefix/", s.Endpoint.AbsoluteUri);
        Assert.Equal("hf_x", s.Token);
        Assert.Equal("/tmp/xdg/finqlora/hub", s.CacheRoot);

        env["FINQLORA_CACHE"] = "/tmp/fq";
        Assert.Equal("/tmp/fq", HubSettings.FromEnvironment(k => env.GetValueOrDefault(k)).CacheRoot);

        HubSettings defaults = HubSettings.FromEnvironment(_ => null);
        Assert.Equal("https://huggingface.co/", defaults.Endpoint.AbsoluteUri);
        Assert.Null(defaults.Token);
        Assert.EndsWith(Path.Combine(".cache", "finqlora", "hub"), defaults.CacheRoot);

        env["HF_ENDPOINT"] = "huggingface.co";
        Assert.Contains("HF_ENDPOINT='huggingface.co'", Assert.Throws<UserInputException>(() => HubSettings.FromEnvironment(k => env.GetValueOrDefault(k))).Message);
    }

    [Fact]
    public void Backoff_DoublesAndIsCapped()
    {
        var policy = new HubRetryPolicy(10, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(20), TimeSpan.FromSeconds(60));
        Assert.Equal([1, 2, 4, 8, 16, 20, 20], Enumerable.Range(1, 7).Select(n => policy.DelayAfter(n).TotalSeconds));
    }

    [Fact]
    public async Task Checksums_MatchTheGitBlobIdAndSha256RecordedForARealFile()
    {
        // A binary file of this repository (no line-ending conversion can touch it); the ids are git's own
        // (git hash-object) and sha256sum's, and the Hub uses the same git ids.
        string path = Path.Combine(Shared.RepoRoot, "tests", "fixtures", "peft", "finqlora_made_adapter", "adapter_model.safetensors");
        var asPlainFile = new HubFile("adapter_model.safetensors", 60968, "9c514517423b488e57b3dd01a941cb91b647225f", null);
        var asLfsFile = asPlainFile with { Sha256 = "b9c0b855b21e04e108aef8a9e283a21e81d47d8cc9057a742d0ea2938c484776" };
        Assert.Equal(asPlainFile.ContentId, await ContentHasher.HashFileAsync(asPlainFile, path, CancellationToken.None));
        Assert.Equal(asLfsFile.ContentId, await ContentHasher.HashFileAsync(asLfsFile, path, CancellationToken.None));
    }
}
