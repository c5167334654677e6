using System.Security.Cryptography;
using System.Text;

namespace FinQLoRA.Server;

/// <summary><c>Authorization: Bearer KEY</c> compared in constant time: both sides are hashed first, so neither the
/// key's content nor its length shows in the comparison time.</summary>
internal sealed class ApiKeyCheck(string key)
{
    private readonly byte[] _expected = SHA256.HashData(Encoding.UTF8.GetBytes(key));

    public bool Accepts(string? authorization)
    {
        string given = Given(authorization);
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(given));
        return CryptographicOperations.FixedTimeEquals(hash, _expected) & given.Length > 0;
    }

    /// <summary>The key a request presents (<c>Authorization: Bearer KEY</c>), or "" when none.</summary>
    public static string Given(string? authorization)
    {
        const string prefix = "Bearer ";
        return authorization is not null && authorization.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)
            ? authorization[prefix.Length..].Trim()
            : "";
    }
}
