using System.Security.Cryptography;
using System.Text;
using FinQLoRA.Server.Tenancy;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Serving.Tenancy;

/// <summary>The keys file read as <c>serve --keys</c> reads it: every mistake one line naming the file, the entry (and
/// the line, for YAML) and the fix; entries added as <c>serve-keys add</c> adds them.</summary>
public sealed class KeysFileTests
{
    private static readonly string Hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes("fq-one")));
    private static readonly string OtherHash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes("fq-two")));

    [Fact]
    public void AFullEntryReadsInBothFormats()
    {
        string yaml = $"""
            # desks
            keys:
              - id: desk-a
                sha256: {Hash.ToUpperInvariant()}
                models: ["desk-a-*", llama]
                requests_per_minute: 60
                tokens_per_minute: 20000
                can_manage_adapters: true
              - id: desk-b
                sha256: {OtherHash}
                models:
                  - "*"
            """;
        string json = $$"""
            {"keys": [{"id": "desk-a", "sha256": "{{Hash}}", "models": ["desk-a-*", "llama"], "requests_per_minute": 60,
                       "tokens_per_minute": 20000, "can_manage_adapters": true},
                      {"id": "desk-b", "sha256": "{{OtherHash}}", "models": ["*"]}]}
            """;
        foreach (var keys in new[] { KeysFile.Parse("k.yaml", yaml), KeysFile.Parse("k.json", json) })
        {
            Assert.Equal(["desk-a", "desk-b"], keys.Select(k => k.Id));
            var a = keys[0];
            Assert.Equal(SHA256.HashData(Encoding.UTF8.GetBytes("fq-one")), a.Sha256);
            Assert.Equal(["desk-a-*", "llama"], a.Models.Patterns);
            Assert.Equal(60, a.RequestsPerMinute);
            Assert.Equal(20000, a.TokensPerMinute);
            Assert.True(a.CanManageAdapters);
            Assert.Null(keys[1].RequestsPerMinute);
            Assert.False(keys[1].CanManageAdapters);
            Assert.True(keys[1].Models.Allows("anything"));
        }
    }

    public static TheoryData<string, string, string> Mistakes() => new()
    {
        // file, text, what the one line must say
        { "k.yaml", $"keys:\n  - id: a\n    sha256: {Hash}\n    models: [a]\n    rpm: 5\n", "k.yaml:5: keys[0].rpm: unknown key; an entry has id, sha256, models, requests_per_minute" },
        { "k.yaml", $"keys:\n  - id: a\n    sha256: {Hash}\n    models: [a]\n  - id: a\n    sha256: {OtherHash}\n    models: [b]\n", "k.yaml:5: keys[1].id: 'a' is also the id of k.yaml:2: keys[0]; ids must be unique" },
        { "k.yaml", $"keys:\n  - id: a\n    sha256: abc\n    models: [a]\n", "k.yaml:3: keys[0].sha256: not 64 hex digits (got 3 characters)" },
        { "k.yaml", $"keys:\n  - id: a\n    sha256: {Hash[..63]}g\n    models: [a]\n", "keys[0].sha256: not 64 hex digits" },
        { "k.yaml", $"keys:\n  - id: a\n    sha256: {Hash}\n    models: [\"desk-[ab]\"]\n", "k.yaml:4: keys[0].models: 'desk-[ab]' uses '[', which is not supported: only '*' (any characters) and '?' (one character) are wildcards" },
        { "k.yaml", $"keys:\n  - id: a\n    sha256: {Hash}\n    models: desk-a\n", "keys[0].models: must be a list of names or globs" },
        { "k.yaml", $"keys:\n  - id: a\n    sha256: {Hash}\n    models: []\n", "keys[0].models: the list is empty" },
        { "k.yaml", $"keys:\n  - id: a\n    sha256: {Hash}\n", "k.yaml:2: keys[0] (id 'a'): has no 'models'" },
        { "k.yaml", $"keys:\n  - id: a\n    models: [a]\n", "has no 'sha256'" },
        { "k.yaml", $"keys:\n  - id: a b\n    sha256: {Hash}\n    models: [a]\n", "keys[0].id: 'a b' is not an id" },
        { "k.yaml", $"keys:\n  - id: anonymous\n    sha256: {Hash}\n    models: [a]\n", "'anonymous' is the id of requests without a key" },
        { "k.yaml", $"keys:\n  - id: a\n    sha256: {Hash}\n    models: [a]\n    requests_per_minute: 0\n", "keys[0].requests_per_minute: must be a whole number >= 1 (got 0)" },
        { "k.yaml", $"keys:\n  - id: a\n    sha256: {Hash}\n    models: [a]\n    can_manage_adapters: yes\n", "keys[0].can_manage_adapters: must be true or false (got yes)" },
        { "k.yaml", $"keys:\n  - id: a\n    sha256: {Hash}\n    models: [a]\n  - id: b\n    sha256: {Hash}\n    models: [b]\n", "keys[1].sha256: the same hash as key 'a'" },
        { "k.yaml", $"tenants:\n  - id: a\n", "k.yaml:1: tenants: unknown key at the top level" },
        { "k.yaml", "keys: [\n", "k.yaml:" },
        { "k.json", $$"""{"keys": [{"id": "a", "sha256": "{{Hash}}", "models": ["a"], "tokens_per_minute": "many"}]}""", "k.json: keys[0].tokens_per_minute: must be a whole number >= 1 (got many)" },
        { "k.json", $$"""{"keys": [{"id": "a", "sha256": "{{Hash}}", "models": ["a"], "can_manage_adapters": "true"}]}""", "k.json: keys[0].can_manage_adapters: must be true or false" },
        { "k.json", $$"""{"keys": [{"id": "a", "id": "b", "sha256": "{{Hash}}", "models": ["a"]}]}""", "k.json: keys[0].id: given twice in one entry" },
        { "k.json", $$"""{"keys": [{"id": 5, "sha256": "{{Hash}}", "models": ["a"]}]}""", "k.json: keys[0].id: must be a string" },
        { "k.toml", "", "k.toml: a keys file is YAML (.yaml, .yml) or JSON (.json)" },
    };

    [Theory]
    [MemberData(nameof(Mistakes))]
    public void EveryMistakeIsOneLineNamingTheFileTheEntryAndTheFix(string file, string text, string says)
    {
        var e = Assert.Throws<UserInputException>(() => KeysFile.Parse(file, text));
        Assert.Contains(says, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void AddAppendsToAYamlFileKeepingItsCommentsAndRewritesJson()
    {
        using var dir = new TempFolder();
        string yaml = dir.PathOf("keys.yaml");
        File.WriteAllText(yaml, $"# owned by the platform team\nkeys:\n    - id: desk-a   # the first desk\n      sha256: {Hash}\n      models: [\"desk-a-*\"]\n");
        KeysFile.Add(yaml, new TenantKey("desk-b", SHA256.HashData(Encoding.UTF8.GetBytes("fq-two")), ModelGrant.Of(["*"])) { RequestsPerMinute = 5 });
        string text = File.ReadAllText(yaml);
        Assert.Contains("# owned by the platform team", text);
        Assert.Contains("# the first desk", text);
        var keys = KeysFile.Read(yaml);
        Assert.Equal(["desk-a", "desk-b"], keys.Select(k => k.Id));
        Assert.Equal(["*"], keys[1].Models.Patterns); // '*' quoted: not a YAML alias
        Assert.Equal(5, keys[1].RequestsPerMinute);
        var duplicate = Assert.Throws<UserInputException>(() => KeysFile.Add(yaml, new TenantKey("desk-b", new byte[32], ModelGrant.All)));
        Assert.Contains("already holds a key with id 'desk-b'", duplicate.Message);
        Assert.Equal(text, File.ReadAllText(yaml)); // a refused add leaves the file as it was

        string json = dir.PathOf("keys.json");
        KeysFile.Add(json, new TenantKey("x", SHA256.HashData(Encoding.UTF8.GetBytes("fq-one")), ModelGrant.Of(["m"])) { CanManageAdapters = true });
        KeysFile.Add(json, new TenantKey("y", SHA256.HashData(Encoding.UTF8.GetBytes("fq-two")), ModelGrant.Of(["n?"])) { TokensPerMinute = 9 });
        var fromJson = KeysFile.Read(json);
        Assert.Equal(["x", "y"], fromJson.Select(k => k.Id));
        Assert.True(fromJson[0].CanManageAdapters);
        Assert.Equal(9, fromJson[1].TokensPerMinute);
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp"));
        Assert.Empty(Directory.GetFiles(dir.Path, "*.lock"));
    }

    [Fact]
    public void ConcurrentAddsLoseNoEntry()
    {
        using var dir = new TempFolder();
        foreach (string file in new[] { dir.PathOf("keys.yaml"), dir.PathOf("keys.json") })
        {
            Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
                KeysFile.Add(file, new TenantKey($"k{i}", SHA256.HashData(Encoding.UTF8.GetBytes($"fq-{i}")), ModelGrant.All)));
            Assert.Equal(Enumerable.Range(0, 8).Select(i => $"k{i}"), KeysFile.Read(file).Select(k => k.Id).Order(StringComparer.Ordinal));
        }
    }

    [Fact]
    public void AnEmptyOrMissingFileIsRefusedWhenServing()
    {
        using var dir = new TempFolder();
        Assert.Contains("keys file not found", Assert.Throws<UserInputException>(() => KeysFile.Read(dir.PathOf("none.yaml"))).Message);
        File.WriteAllText(dir.PathOf("empty.yaml"), "# nothing yet\n");
        Assert.Contains("holds no keys", Assert.Throws<UserInputException>(() => KeysFile.Read(dir.PathOf("empty.yaml"))).Message);
        // ... and a file of comments only takes its first key
        KeysFile.Add(dir.PathOf("empty.yaml"), new TenantKey("a", new byte[32], ModelGrant.All));
        Assert.Single(KeysFile.Read(dir.PathOf("empty.yaml")));
        Assert.StartsWith("# nothing yet\n", File.ReadAllText(dir.PathOf("empty.yaml")));
    }
}
