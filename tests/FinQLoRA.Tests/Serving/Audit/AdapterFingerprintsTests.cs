using System.Security.Cryptography;
using System.Text.Json.Nodes;
using FinQLoRA.Server.Audit;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Serving.Audit;

/// <summary>An adapter's hash is that of the weights file the server reads, whatever its lineage.json says.</summary>
public sealed class AdapterFingerprintsTests
{
    [Fact]
    public void TheHashIsOfTheFileServedNotTheOneLineageRecords()
    {
        using var dir = new TempFolder();
        byte[] weights = [1, 2, 3, 4, 5];
        dir.WriteBytes("adapter_model.safetensors", weights);
        string actual = Convert.ToHexStringLower(SHA256.HashData(weights));
        string recorded = new('0', 64); // the file changed after training
        dir.Write("lineage.json", new JsonObject { ["adapter_files"] = new JsonObject { ["adapter_model.safetensors"] = recorded } }.ToJsonString());

        var fingerprints = new AdapterFingerprints(enabled: true);
        fingerprints.Loaded("x", fingerprints.Hash(dir.Path));
        Assert.Equal(actual, fingerprints.Of("x"));
        Assert.Null(fingerprints.Of(null)); // the base
        fingerprints.Unloaded("x");
        Assert.Null(fingerprints.Of("x"));

        Assert.Null(fingerprints.Hash(dir.PathOf("no-such-adapter"))); // the loader refuses it with its own message
        Assert.Null(new AdapterFingerprints(enabled: false).Hash(dir.Path)); // no audit log: nothing read
    }
}
