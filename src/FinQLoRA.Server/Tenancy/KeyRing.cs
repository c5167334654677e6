using System.Security.Cryptography;

namespace FinQLoRA.Server.Tenancy;

/// <summary>
/// The keys a server accepts. A presented key is hashed and compared with every stored hash by
/// <see cref="CryptographicOperations.FixedTimeEquals"/>, all of them, whichever matches: the time taken depends on
/// neither the key's content, its length, nor which entry (if any) it is, so timing reveals no prefix of a hash and
/// no position in the file.
/// </summary>
public sealed class KeyRing
{
    private readonly TenantKey[] _keys;

    public KeyRing(IReadOnlyList<TenantKey> keys)
    {
        if (keys.Count == 0) throw new ArgumentException("a key ring needs at least one key", nameof(keys));
        _keys = [.. keys];
    }

    public IReadOnlyList<TenantKey> Keys => _keys;

    /// <summary>The key whose hash the presented key has, or null (no key, an empty key or an unknown one).</summary>
    public TenantKey? Find(string presented)
    {
        byte[] hash = ApiKeyHash.Of(presented);
        TenantKey? found = null;
        foreach (var key in _keys)
        {
            // no break: every entry costs the same, matched or not
            bool match = CryptographicOperations.FixedTimeEquals(hash, key.Sha256);
            found = match ? key : found;
        }
        return presented.Length > 0 ? found : null;
    }
}
