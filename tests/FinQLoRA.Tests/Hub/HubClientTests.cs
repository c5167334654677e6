using System.Security.Cryptography;
using FinQLoRA.Hub;

namespace FinQLoRA.Tests.Hub;

/// <summary>The Hub client against <see cref="FakeHubServer"/> on 127.0.0.1: layout, resume, auth, checksums, cache, retries.</summary>
public sealed class HubClientTests : IAsyncLifetime
{
    private readonly FakeHubServer _server = new();
    private readonly string _root = Path.Combine(Path.GetTempPath(), $"finqlora-hub-{Guid.NewGuid():N}");
    private readonly CancellationTokenSource _deadline = new(TimeSpan.FromSeconds(60));

    private static readonly HubRetryPolicy FastRetry = new(4, TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(50), TimeSpan.FromSeconds(10));

    private string Cache => Path.Combine(_root, "cache");
    private string Out => Path.Combine(_root, "out");
    private CancellationToken Deadline => _deadline.Token;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _deadline.Dispose();
        if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
    }

    private HubClient Client(string? token = null, HubRetryPolicy? retry = null, Uri? endpoint = null) =>
        new(new HubSettings { Endpoint = endpoint ?? _server.Endpoint, Token = token, CacheRoot = Cache, Retry = retry ?? FastRetry });

    private static FakeHubServer.ServedFile Random(string path, int size, bool lfs, int seed)
    {
        var bytes = new byte[size];
        new Random(seed).NextBytes(bytes);
        return new FakeHubServer.ServedFile(path, bytes, lfs);
    }

    private static FakeHubServer.ServedFile Text(string path, string text) => new(path, System.Text.Encoding.UTF8.GetBytes(text), false);

    private static string Sha256Of(string path) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));

    [Fact]
    public async Task ModelFetch_FollowsListingPagesAndCdnRedirects_AndPlacesOnlyIncludedFiles()
    {
        FakeHubServer.ServedFile[] files =
        [
            Text(".gitattributes", "*.safetensors filter=lfs diff=lfs merge=lfs -text\n"),
            Text("README.md", "# tiny\n"),
            Text("config.json", "{\"hidden_size\": 64}"),
            Text("tokenizer.json", "{\"model\": {}}"),
            Text("tokenizer_config.json", "{}"),
            Text("generation_config.json", ""),
            Random("model-00001-of-00002.safetensors", 70_000, lfs: true, seed: 1),
            Random("model-00002-of-00002.safetensors", 30_000, lfs: true, seed: 2),
            Random("original/consolidated.00.pth", 5_000, lfs: true, seed: 3),
            Text("original/params.json", "{\"dim\": 64}"),
        ];
        _server.AddRepo(HubRepoType.Model, "acme/tiny-llama", "main", files);
        _server.ListingPageSize = 3;
        _server.RequiredToken = "hf_secret";

        using HubClient client = Client(token: "hf_secret");
        HubRepo repo = HubRepo.Create(HubRepoType.Model, "acme/tiny-llama");
        HubFetchResult result = await client.FetchAsync(repo, ["*.json", "*.safetensors", "tokenizer*"], Out, cancellation: Deadline);

        string[] expected = ["config.json", "generation_config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "original/params.json", "tokenizer.json", "tokenizer_config.json"];
        Assert.Equal(expected, result.Files.Select(f => f.File.Path).Order(StringComparer.Ordinal));
        foreach (FakeHubServer.ServedFile served in files.Where(f => expected.Contains(f.Path)))
            Assert.Equal(served.Content, File.ReadAllBytes(Path.Combine(Out, served.Path)));
        Assert.False(File.Exists(Path.Combine(Out, "README.md")));
        Assert.False(File.Exists(Path.Combine(Out, "original", "consolidated.00.pth")));

        // 10 files + 1 folder entry in pages of 3 -> 4 listing requests, each but the first from a Link header.
        Assert.Equal(4, _server.Requests.Count(r => r.Target.StartsWith("/api/models/acme/tiny-llama/tree/main?recursive=true")));
        // LFS content came from the CDN hop, which rejects Authorization headers: the token stayed on the Hub.
        Assert.All(_server.Requests.Where(r => r.Target.StartsWith("/cdn/")), r => Assert.Null(r.Authorization));
        Assert.Equal(2, _server.Requests.Count(r => r.Target.StartsWith("/cdn/")));
        Assert.Equal(7, result.DownloadedCount);
        // The empty file needed no request.
        Assert.DoesNotContain(_server.Requests, r => r.Target.EndsWith("/generation_config.json"));
    }

    [Fact]
    public async Task DroppedConnectionMidFile_IsResumedWithRange_AndEndsWithTheRightSha256()
    {
        FakeHubServer.ServedFile shard = Random("data/train-00000-of-00001.parquet", 200_000, lfs: true, seed: 7);
        _server.AddRepo(HubRepoType.Dataset, "FinGPT/fingpt-sentiment-train", "main", shard);
        _server.DropConnection(shard.Path, bytes: 50_000, times: 2);

        using HubClient client = Client();
        HubRepo repo = HubRepo.Create(HubRepoType.Dataset, "FinGPT/fingpt-sentiment-train");
        HubFetchResult result = await client.FetchAsync(repo, [], Out, cancellation: Deadline);

        Assert.Equal(shard.Sha256, Sha256Of(Path.Combine(Out, shard.Path)));
        Assert.Equal([null, "bytes=50000-", "bytes=100000-"], _server.ContentRequests(shard).Select(r => r.Range));
        // Datasets use the /api/datasets and /datasets/... prefixes.
        Assert.Contains(_server.Requests, r => r.Target == "/api/datasets/FinGPT/fingpt-sentiment-train/tree/main?recursive=true");
        Assert.Contains(_server.Requests, r => r.Target == "/datasets/FinGPT/fingpt-sentiment-train/resolve/main/data/train-00000-of-00001.parquet");
        Assert.False(File.Exists(client.Cache.PartialPath(repo, result.Files[0].File)));
    }

    [Fact]
    public async Task DownloadCutInAnEarlierRun_IsResumedByTheNextRun()
    {
        FakeHubServer.ServedFile shard = Random("data/test.parquet", 120_000, lfs: true, seed: 8);
        _server.AddRepo(HubRepoType.Dataset, "takala/financial_phrasebank", "main", shard);
        _server.DropConnection(shard.Path, bytes: 30_000, times: 1);
        HubRepo repo = HubRepo.Create(HubRepoType.Dataset, "takala/financial_phrasebank");

        using (HubClient once = Client(retry: FastRetry with { MaxAttempts = 1 }))
        {
            var error = await Assert.ThrowsAsync<UserInputException>(() => once.FetchAsync(repo, [], Out, cancellation: Deadline));
            Assert.Contains("after 1 attempts", error.Message);
            Assert.Contains("HF_ENDPOINT", error.Message);
        }
        HubFile listed = (await Client().ListFilesAsync(repo, cancellation: Deadline)).Single();
        Assert.Equal(30_000, new FileInfo(new HubCache(Cache).PartialPath(repo, listed)).Length);

        using HubClient again = Client();
        await again.FetchAsync(repo, [], Out, cancellation: Deadline);
        Assert.Equal(shard.Sha256, Sha256Of(Path.Combine(Out, shard.Path)));
        Assert.Equal("bytes=30000-", _server.ContentRequests(shard).Last().Range);
    }

    [Fact]
    public async Task PartialOfAnOlderVersion_IsDiscarded_NotGluedToTheNewOne()
    {
        FakeHubServer.ServedFile v1 = Random("data/train.parquet", 90_000, lfs: true, seed: 21);
        FakeHubServer.ServedFile v2 = Random("data/train.parquet", 90_000, lfs: true, seed: 22);
        HubRepo repo = HubRepo.Create(HubRepoType.Dataset, "FinGPT/fingpt-sentiment-train");
        _server.AddRepo(HubRepoType.Dataset, repo.Id, "main", v1);
        _server.DropConnection(v1.Path, bytes: 40_000, times: 1);
        using (HubClient once = Client(retry: FastRetry with { MaxAttempts = 1 }))
            await Assert.ThrowsAsync<UserInputException>(() => once.FetchAsync(repo, [], Out, cancellation: Deadline));

        // main moved on before the rerun: the 40 000 bytes of v1 must not become the start of v2.
        _server.AddRepo(HubRepoType.Dataset, repo.Id, "main", v2);
        using HubClient client = Client();
        await client.FetchAsync(repo, [], Out, cancellation: Deadline);

        Assert.Equal(v2.Sha256, Sha256Of(Path.Combine(Out, v2.Path)));
        Assert.Null(_server.ContentRequests(v2).Single().Range);
    }

    [Fact]
    public async Task ServerIgnoringRange_StartsOverAndStillVerifies()
    {
        FakeHubServer.ServedFile shard = Random("train.parquet", 80_000, lfs: true, seed: 9);
        _server.AddRepo(HubRepoType.Dataset, "zeroshot/twitter-financial-news-sentiment", "main", shard);
        _server.DropConnection(shard.Path, bytes: 20_000, times: 1);
        _server.IgnoreRange = true;

        using HubClient client = Client();
        await client.FetchAsync(HubRepo.Create(HubRepoType.Dataset, "zeroshot/twitter-financial-news-sentiment"), [], Out, cancellation: Deadline);

        Assert.Equal(shard.Sha256, Sha256Of(Path.Combine(Out, shard.Path)));
        Assert.Equal(2, _server.ContentRequests(shard).Count);
    }

    [Fact]
    public async Task MissingToken_SaysSetHfTokenAndAcceptTheLicence_WrongTokenIsRefused_RightTokenWorks()
    {
        _server.AddRepo(HubRepoType.Model, "meta-llama/Llama-3.1-8B-Instruct", "main", Text("config.json", "{}"));
        _server.RequiredToken = "hf_right";
        HubRepo repo = HubRepo.Create(HubRepoType.Model, "meta-llama/Llama-3.1-8B-Instruct");

        using (HubClient anonymous = Client())
        {
            var error = await Assert.ThrowsAsync<UserInputException>(() => anonymous.FetchAsync(repo, [], Out, cancellation: Deadline));
            Assert.Contains("HTTP 401", error.Message);
            Assert.Contains("set HF_TOKEN", error.Message);
            Assert.Contains("accept the model's licence", error.Message);
            Assert.Contains($"{_server.Endpoint}meta-llama/Llama-3.1-8B-Instruct", error.Message);
            Assert.DoesNotContain('\n', error.Message);
        }
        using (HubClient wrong = Client(token: "hf_wrong"))
        {
            var error = await Assert.ThrowsAsync<UserInputException>(() => wrong.FetchAsync(repo, [], Out, cancellation: Deadline));
            Assert.Contains("HF_TOKEN was refused", error.Message);
        }
        using HubClient right = Client(token: "hf_right");
        HubFetchResult result = await right.FetchAsync(repo, [], Out, cancellation: Deadline);
        Assert.Equal("{}", File.ReadAllText(Path.Combine(Out, "config.json")));
        Assert.Equal("Bearer hf_right", _server.Requests.Last().Authorization);
        Assert.Single(result.Files);
    }

    [Theory]
    [InlineData(true, "sha256 mismatch")]
    [InlineData(false, "git blob sha1 mismatch")]
    public async Task CorruptContent_FailsWithChecksumMismatch_AndLeavesNoFileBehind(bool lfs, string expected)
    {
        FakeHubServer.ServedFile file = Random("data/train.jsonl", 10_000, lfs, seed: 11);
        _server.AddRepo(HubRepoType.Dataset, "FinGPT/fingpt-ner-cls", "main", file);
        _server.CorruptPaths.Add(file.Path);
        HubRepo repo = HubRepo.Create(HubRepoType.Dataset, "FinGPT/fingpt-ner-cls");

        using HubClient client = Client();
        var error = await Assert.ThrowsAsync<UserInputException>(() => client.FetchAsync(repo, [], Out, cancellation: Deadline));
        Assert.Contains(expected, error.Message);
        Assert.Contains("'data/train.jsonl'", error.Message);
        HubFile listed = (await client.ListFilesAsync(repo, cancellation: Deadline)).Single();
        Assert.False(File.Exists(client.Cache.PartialPath(repo, listed)));
        Assert.False(File.Exists(client.Cache.FilePath(repo, listed)));
        Assert.False(File.Exists(Path.Combine(Out, "data", "train.jsonl")));

        // Once the server is fixed the same cache downloads it afresh and verifies.
        _server.CorruptPaths.Clear();
        await client.FetchAsync(repo, [], Out, cancellation: Deadline);
        Assert.Equal(file.Content, File.ReadAllBytes(Path.Combine(Out, "data", "train.jsonl")));
    }

    [Fact]
    public async Task UnknownRepoOrRevision_Fails404WithTheFix()
    {
        _server.AddRepo(HubRepoType.Dataset, "FinGPT/fingpt-headline-cls", "main", Text("a.json", "[]"));
        using HubClient client = Client();

        var noRepo = await Assert.ThrowsAsync<UserInputException>(() =>
            client.FetchAsync(HubRepo.Create(HubRepoType.Dataset, "FinGPT/no-such-set"), [], Out, cancellation: Deadline));
        Assert.Contains("dataset repo 'FinGPT/no-such-set' or revision 'main' not found", noRepo.Message);
        Assert.Contains("HTTP 404", noRepo.Message);

        var noRevision = await Assert.ThrowsAsync<UserInputException>(() =>
            client.FetchAsync(HubRepo.Create(HubRepoType.Dataset, "FinGPT/fingpt-headline-cls", "v9"), [], Out, cancellation: Deadline));
        Assert.Contains("revision 'v9' not found", noRevision.Message);
        Assert.Contains("--revision", FinQLoRA.Cli.FlagNames.Render(noRevision));
    }

    [Fact]
    public async Task SecondFetch_IsServedFromTheCacheWithoutDownloading()
    {
        FakeHubServer.ServedFile[] files = [Random("data/train.parquet", 40_000, lfs: true, seed: 12), Text("README.md", "card")];
        _server.AddRepo(HubRepoType.Dataset, "FinGPT/fingpt-headline-cls", "main", files);
        HubRepo repo = HubRepo.Create(HubRepoType.Dataset, "FinGPT/fingpt-headline-cls");
        using HubClient client = Client();

        HubFetchResult first = await client.FetchAsync(repo, [], Out, cancellation: Deadline);
        int resolvesAfterFirst = _server.ResolveCount;
        string secondOut = Path.Combine(_root, "out2");
        HubFetchResult second = await client.FetchAsync(repo, [], secondOut, cancellation: Deadline);

        Assert.Equal(2, first.DownloadedCount);
        Assert.Equal(2, resolvesAfterFirst);
        Assert.Equal(2, _server.ResolveCount);
        Assert.Equal(2, second.CachedCount);
        Assert.Equal(files[0].Content, File.ReadAllBytes(Path.Combine(secondOut, "data", "train.parquet")));
    }

    [Fact]
    public async Task BranchThatMoved_IsDownloadedAgain_BecauseTheCacheChecksTheListedChecksum()
    {
        HubRepo repo = HubRepo.Create(HubRepoType.Dataset, "FinGPT/fingpt-sentiment-train");
        _server.AddRepo(HubRepoType.Dataset, repo.Id, "main", Text("train.jsonl", "{\"v\":1}\n"));
        using HubClient client = Client();
        await client.FetchAsync(repo, [], Out, cancellation: Deadline);

        _server.AddRepo(HubRepoType.Dataset, repo.Id, "main", Text("train.jsonl", "{\"v\":2}\n"));
        HubFetchResult again = await client.FetchAsync(repo, [], Out, cancellation: Deadline);

        Assert.Equal(1, again.DownloadedCount);
        Assert.Equal("{\"v\":2}\n", File.ReadAllText(Path.Combine(Out, "train.jsonl")));
    }

    [Fact]
    public async Task UnreachableEndpoint_FailsAfterBoundedRetries()
    {
        // A port that was free a moment ago: connections are refused.
        var probe = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        probe.Start();
        int port = ((System.Net.IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();

        var retries = new List<int>();
        using HubClient client = Client(retry: FastRetry with { MaxAttempts = 3 }, endpoint: new Uri($"http://127.0.0.1:{port}/"));
        var error = await Assert.ThrowsAsync<UserInputException>(() =>
            client.FetchAsync(HubRepo.Create(HubRepoType.Dataset, "a/b"), [], Out, new RecordingObserver(retries), Deadline));
        Assert.Contains("after 3 attempts", error.Message);
        Assert.Contains($"HF_ENDPOINT (now http://127.0.0.1:{port}/)", error.Message);
        Assert.Equal([1, 2], retries);
    }

    [Fact]
    public async Task StalledServer_HitsTheIdleTimeout_AndFailsAfterBoundedRetries()
    {
        FakeHubServer.ServedFile file = Text("train.jsonl", "{}\n");
        _server.AddRepo(HubRepoType.Dataset, "a/stalled", "main", file);
        _server.StalledPaths.Add(file.Path);

        using HubClient client = Client(retry: FastRetry with { MaxAttempts = 2, IdleTimeout = TimeSpan.FromMilliseconds(300) });
        var error = await Assert.ThrowsAsync<UserInputException>(() =>
            client.FetchAsync(HubRepo.Create(HubRepoType.Dataset, "a/stalled"), [], Out, cancellation: Deadline));
        Assert.Contains("after 2 attempts", error.Message);
        Assert.Contains("no answer within", error.Message);
    }

    [Fact]
    public async Task IncludeMatchingNothing_NamesTheFilesThereAre()
    {
        _server.AddRepo(HubRepoType.Dataset, "a/b", "main", Text("train.csv", "x"));
        using HubClient client = Client();
        var error = await Assert.ThrowsAsync<UserInputException>(() =>
            client.FetchAsync(HubRepo.Create(HubRepoType.Dataset, "a/b"), ["*.parquet"], Out, cancellation: Deadline));
        Assert.Contains("--include *.parquet", FinQLoRA.Cli.FlagNames.Render(error));
        Assert.Contains("train.csv", error.Message);
    }

    [Fact]
    public async Task Token_IsNotSentToANextPageLinkOnAnotherHost()
    {
        _server.AddRepo(HubRepoType.Model, "acme/tiny", "main", Text("a.json", "1"), Text("b.json", "2"), Text("c.json", "3"));
        _server.ListingPageSize = 1;
        _server.NextPageHost = _server.CdnHost; // same server, another host name: a foreign host as far as the client knows

        using HubClient client = Client(token: "hf_secret");
        var files = await client.ListFilesAsync(HubRepo.Create(HubRepoType.Model, "acme/tiny"), cancellation: Deadline);

        Assert.Equal(["a.json", "b.json", "c.json"], files.Select(f => f.Path));
        var listings = _server.Requests.Where(r => r.Target.StartsWith("/api/")).ToList();
        Assert.Equal(3, listings.Count);
        Assert.Equal("Bearer hf_secret", listings[0].Authorization);
        Assert.All(listings.Skip(1), r => Assert.StartsWith("localhost:", r.Host));
        Assert.All(listings.Skip(1), r => Assert.Null(r.Authorization));
    }

    [Fact]
    public async Task Token_FollowsARedirectTheHubMakesToItself_ButNotTheCdnHop()
    {
        FakeHubServer.ServedFile weights = Random("model.safetensors", 3_000, lfs: true, seed: 5);
        _server.AddRepo(HubRepoType.Model, "acme/new-name", "main", Text("config.json", "{}"), weights);
        _server.Renamed["acme/old-name"] = "acme/new-name";
        _server.RequiredToken = "hf_secret";

        using HubClient client = Client(token: "hf_secret");
        await client.FetchAsync(HubRepo.Create(HubRepoType.Model, "acme/old-name"), [], Out, cancellation: Deadline);

        Assert.Equal("{}", File.ReadAllText(Path.Combine(Out, "config.json")));
        Assert.Equal(weights.Content, File.ReadAllBytes(Path.Combine(Out, "model.safetensors")));
        // Every hop on the Hub's own host carried the token (the renamed repo's 307 included) ...
        Assert.All(_server.Requests.Where(r => !r.Target.StartsWith("/cdn/")), r => Assert.Equal("Bearer hf_secret", r.Authorization));
        Assert.Contains(_server.Requests, r => r.Target.StartsWith("/api/models/acme/new-name/"));
        // ... and the CDN on another host saw none.
        var cdn = Assert.Single(_server.Requests, r => r.Target.StartsWith("/cdn/"));
        Assert.Null(cdn.Authorization);
        Assert.StartsWith("localhost:", cdn.Host);
    }

    [Theory]
    [InlineData("../escape.json")]
    [InlineData("sub/../../escape.json")]
    [InlineData("line\nbreak.json")]
    [InlineData("carriage\rreturn.json")]
    [InlineData("tab\t.json")]
    public async Task UnsafeListedFileName_IsRefusedBeforeAnyDownloadOrWrite(string escaped)
    {
        string name = escaped.Replace("\\n", "\n").Replace("\\r", "\r").Replace("\\t", "\t");
        // The good file comes first: it must not be fetched either, so no half-fetched output is left.
        _server.AddRepo(HubRepoType.Dataset, "a/b", "main", Text("good.json", "1"), Text(name, "2"));
        using HubClient client = Client();
        var error = await Assert.ThrowsAsync<UserInputException>(() =>
            client.FetchAsync(HubRepo.Create(HubRepoType.Dataset, "a/b"), [], Out, cancellation: Deadline));
        Assert.Contains("names an unsafe file path", error.Message);
        Assert.DoesNotContain('\n', error.Message);
        Assert.DoesNotContain('\r', error.Message);
        Assert.Equal(0, _server.ResolveCount);
        Assert.False(Directory.Exists(Out));
        Assert.False(Directory.Exists(Path.Combine(Cache, "datasets", "a", "b", "main", "files")));
    }

    private sealed class RecordingObserver(List<int> retries) : IHubTransferObserver
    {
        public void FileStarted(HubFile file, long bytesAlreadyPresent) { }
        public void BytesOnDisk(HubFile file, long bytesOnDisk) { }
        public void FileFinished(HubFile file, bool fromCache) { }
        public void Retrying(string what, int failures, TimeSpan delay, string reason) => retries.Add(failures);
    }
}
