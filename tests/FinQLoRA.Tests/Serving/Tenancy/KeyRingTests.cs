using System.Security.Cryptography;
using System.Text;
using FinQLoRA.Server.Common;
using FinQLoRA.Server.Tenancy;
using Microsoft.AspNetCore.Http;

namespace FinQLoRA.Tests.Serving.Tenancy;

/// <summary>Keys found by their SHA-256 (checked against .NET's own hashing), globs as model grants, and the key id
/// every request carries for the rest of the server.</summary>
public sealed class KeyRingTests
{
    private static TenantKey Key(string id, string key, params string[] models) => new(id, SHA256.HashData(Encoding.UTF8.GetBytes(key)), ModelGrant.Of(models));

    [Fact]
    public void APresentedKeyFindsItsEntryAndNothingElseDoes()
    {
        var ring = new KeyRing([Key("a", "fq-alpha", "*"), Key("b", "fq-beta", "*"), Key("c", "fq-gamma", "*")]);
        Assert.Equal("a", ring.Find("fq-alpha")?.Id);
        Assert.Equal("b", ring.Find("fq-beta")?.Id);
        Assert.Equal("c", ring.Find("fq-gamma")?.Id);
        Assert.Null(ring.Find(""));
        Assert.Null(ring.Find("fq-alph"));
        Assert.Null(ring.Find("fq-alphaa"));
        Assert.Null(ring.Find(Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes("fq-alpha")))));
        // an entry whose hash is of the empty key never matches a request without a key
        Assert.Null(new KeyRing([Key("empty", "", "*")]).Find(""));
    }

    [Fact]
    public void GeneratedKeysAreRandomBase64UrlAndHashAsSha256sumPrintsThem()
    {
        string one = ApiKeyHash.NewKey(), two = ApiKeyHash.NewKey();
        Assert.NotEqual(one, two);
        Assert.Matches("^fq-[A-Za-z0-9_-]{43}$", one);
        Assert.Equal(32, Convert.FromBase64String(one[3..].Replace('-', '+').Replace('_', '/') + "=").Length);
        Assert.Equal(Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(one))).ToLowerInvariant(), ApiKeyHash.Hex(ApiKeyHash.Of(one)));
        Assert.Equal("fq-x", ApiKeyHash.Presented("bearer  fq-x "));
        Assert.Equal("", ApiKeyHash.Presented("Basic fq-x"));
        Assert.Equal("", ApiKeyHash.Presented(null));
    }

    [Fact]
    public void GlobsMatchWholeNamesCaseSensitively()
    {
        var grant = ModelGrant.Of(["desk-a-*", "llama-3.1-8b", "fx-?"]);
        Assert.True(grant.Allows("desk-a-1"));
        Assert.True(grant.Allows("desk-a-"));
        Assert.True(grant.Allows("llama-3.1-8b"));
        Assert.True(grant.Allows("fx-1"));
        Assert.False(grant.Allows("fx-12"));
        Assert.False(grant.Allows("Desk-a-1"));
        Assert.False(grant.Allows("desk-b-1"));
        Assert.False(grant.Allows("x-desk-a-1"));
        Assert.False(grant.Allows("llama-3.1-8b-instruct"));
        Assert.False(grant.Allows("llama-301-8b")); // '.' is a character, not a wildcard
        Assert.True(ModelGrant.Of(["meta-llama/*"]).Allows("meta-llama/Llama-3.1-8B"));
        Assert.True(ModelGrant.All.Allows("anything at all"));
        foreach (string bad in new[] { "", "a b", "desk-{a,b}", "desk\\*", "a,b" })
            Assert.NotNull(ModelGrant.Problem(bad));
    }

    [Fact]
    public void EveryRequestCarriesItsKeyIdForTheRestOfTheServer()
    {
        var ring = new KeyRing([Key("desk-a", "fq-alpha", "desk-a-*")]);
        HttpContext Request(string? authorization)
        {
            var context = new DefaultHttpContext();
            if (authorization is not null) context.Request.Headers.Authorization = authorization;
            return context;
        }
        var keyed = Request("Bearer fq-alpha");
        Tenant.Authenticate(keyed, ring);
        Assert.Equal("desk-a", keyed.Items["finqlora.key_id"]);
        Assert.Equal("desk-a", Tenant.Of(keyed).Id);

        var wrong = Request("Bearer fq-beta");
        Assert.Equal(401, Assert.Throws<ApiException>(() => Tenant.Authenticate(wrong, ring)).Status);
        Assert.Equal("anonymous", wrong.Items["finqlora.key_id"]);

        var open = Request(null);
        Tenant.Authenticate(open, null);
        Assert.Equal("anonymous", open.Items["finqlora.key_id"]);

        var single = Request("Bearer sk-one");
        Tenant.Authenticate(single, new FinQLoRA.Server.ServerOptions { ServedModelName = "m", ApiKey = "sk-one" }.KeyRing());
        Assert.Equal("default", single.Items["finqlora.key_id"]);
        Assert.True(Tenant.Of(single).CanManageAdapters);
        Assert.True(Tenant.Of(single).Models.Allows("m"));
    }
}
