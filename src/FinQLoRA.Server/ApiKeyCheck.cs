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
        const string prefix = "Bearer ";
        string given = authorization is not null && authorization.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)
            ? authorization[prefix.Length..].Trim()
            : "";
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(given));
        return CryptographicOperations.FixedTimeEquals(hash, _expected) & given.Length > 0;
    }
}
