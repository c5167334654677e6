using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;

namespace FinQLoRA.Server.Tenancy;

/// <summary>API keys as the server handles them: made from 32 random bytes, known to the server only by the SHA-256 of
/// their UTF-8 text (what <c>printf %s "$KEY" | sha256sum</c> prints), read from <c>Authorization: Bearer KEY</c>.</summary>
public static class ApiKeyHash
{
    /// <summary>What every generated key starts with, so that a leaked one is recognisable in a secret scanner.</summary>
    public const string Prefix = "fq-";

    /// <summary>A new key: <c>fq-</c> and 32 bytes from the system's cryptographic generator, base64url (43 characters).</summary>
    public static string NewKey() => Prefix + Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32));

    public static byte[] Of(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));

    /// <summary>The hash as the keys file writes it: 64 lowercase hex digits.</summary>
    public static string Hex(byte[] hash) => Convert.ToHexStringLower(hash);

    /// <summary>The key a request presents (<c>Authorization: Bearer KEY</c>, the scheme in any case), or "" when none.</summary>
    public static string Presented(string? authorization)
    {
        const string scheme = "Bearer ";
        return authorization is not null && authorization.StartsWith(scheme, StringComparison.OrdinalIgnoreCase)
            ? authorization[scheme.Length..].Trim()
            : "";
    }
}
