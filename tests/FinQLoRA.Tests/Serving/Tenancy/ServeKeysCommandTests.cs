using System.Security.Cryptography;
using System.Text;
using FinQLoRA.Server.Tenancy;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Serving.Tenancy;

/// <summary><c>finqlora serve-keys add/list</c> and <c>serve --keys</c> as processes: the printed key authenticates
/// against the hash written (found by .NET's own SHA-256, the key nowhere in the file), and a bad keys file or
/// <c>--api-key</c> with <c>--keys</c> stops <c>serve</c> with one line before the model loads.</summary>
public sealed class ServeKeysCommandTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(1);

    [Fact]
    public void AddPrintsTheKeyOnceAndWritesOnlyItsHash()
    {
        using var dir = new TempFolder();
        string file = dir.PathOf("keys.yaml");
        var first = CliProcess.RunSeparately(Limit, "serve-keys", "add", "--keys", file, "--id", "desk-a", "--models", "desk-a-*,llama", "--rpm", "30", "--manage-adapters");
        Assert.True(first.ExitCode == 0, first.Output);
        string key = Assert.Single(first.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Matches("^fq-[A-Za-z0-9_-]{43}$", key);
        Assert.Contains("shown this once", first.Stderr);
        string text = File.ReadAllText(file);
        Assert.DoesNotContain(key, text);
        Assert.DoesNotContain(key[3..], text);
        Assert.Contains(Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(key))).ToLowerInvariant(), text);

        var second = CliProcess.RunSeparately(Limit, "serve-keys", "add", "--keys", file, "--id", "desk-b", "--models", "*", "--tpm", "5000");
        Assert.True(second.ExitCode == 0, second.Output);
        string otherKey = second.Stdout.Trim();
        Assert.NotEqual(key, otherKey);

        var ring = new KeyRing(KeysFile.Read(file));
        var a = ring.Find(key)!;
        Assert.Equal("desk-a", a.Id);
        Assert.Equal(["desk-a-*", "llama"], a.Models.Patterns);
        Assert.Equal(30, a.RequestsPerMinute);
        Assert.True(a.CanManageAdapters);
        var b = ring.Find(otherKey)!;
        Assert.Equal("desk-b", b.Id);
        Assert.Equal(5000, b.TokensPerMinute);
        Assert.False(b.CanManageAdapters);

        // the same id again: refused, the file untouched, no key printed
        string before = File.ReadAllText(file);
        CliProcess.AssertOneLineError(CliProcess.RunSeparately(Limit, "serve-keys", "add", "--keys", file, "--id", "desk-a", "--models", "*"), "already holds a key with id 'desk-a'");
        Assert.Equal(before, File.ReadAllText(file));

        var list = CliProcess.RunSeparately(Limit, "serve-keys", "list", "--keys", file);
        Assert.Equal(0, list.ExitCode);
        Assert.Contains("desk-a\tmodels desk-a-*,llama\trpm 30\ttpm -\tmanages adapters", list.Stdout);
        Assert.Contains("desk-b\tmodels *", list.Stdout);
        Assert.DoesNotContain(ApiKeyHash.Hex(a.Sha256), list.Stdout);
    }

    [Fact]
    public void AddRefusesBadOptionsBeforeWriting()
    {
        using var dir = new TempFolder();
        string file = dir.PathOf("keys.json");
        (string[] Args, string Says)[] cases =
        [
            (["--id", "a"], "--models is required"),
            (["--id", "a b", "--models", "*"], "--id 'a b' is not an id"),
            (["--id", "a", "--models", "desk-[ab]"], "--models desk-[ab]: 'desk-[ab]' uses '['"),
            (["--id", "a", "--models", "*", "--rpm", "0"], "--rpm must be at least 1"),
            (["--models", "*"], "--id is required"),
        ];
        foreach (var (args, says) in cases)
            CliProcess.AssertOneLineError(CliProcess.RunSeparately(Limit, ["serve-keys", "add", "--keys", file, .. args]), says);
        CliProcess.AssertOneLineError(CliProcess.RunSeparately(Limit, "serve-keys", "add", "--keys", dir.PathOf("keys.txt"), "--id", "a", "--models", "*"), "a keys file is YAML");
        Assert.False(File.Exists(file));
    }

    [Fact]
    public void ServeChecksTheKeysFileBeforeTheModelLoads()
    {
        using var dir = new TempFolder();
        string bad = dir.PathOf("keys.yaml");
        File.WriteAllText(bad, "keys:\n  - id: a\n    sha256: 1234\n    models: [\"*\"]\n");
        // the model path does not exist: each error must come before it is read
        (string[] Args, string Says)[] cases =
        [
            (["--keys", bad], $"{bad}:3: keys[0].sha256: not 64 hex digits"),
            (["--keys", dir.PathOf("none.yaml")], "none.yaml: keys file not found"),
            (["--keys", bad, "--api-key", "k"], "--api-key and --keys are exclusive"),
        ];
        foreach (var (args, says) in cases)
            CliProcess.AssertOneLineError(CliProcess.RunSeparately(Limit, ["serve", "--model", "/no/such/model", .. args]), says);
        // a good file passes: the missing model is what stops it then, and beyond loopback no --api-key is needed
        File.WriteAllText(bad, $"keys:\n  - id: a\n    sha256: {new string('0', 64)}\n    models: [\"*\"]\n");
        CliProcess.AssertOneLineError(CliProcess.RunSeparately(Limit, "serve", "--model", "/no/such/model", "--keys", bad, "--host", "0.0.0.0"), "/no/such/model: not found");
    }
}
