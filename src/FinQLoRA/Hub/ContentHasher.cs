using System.Security.Cryptography;
using System.Text;

namespace FinQLoRA.Hub;

/// <summary>
/// Computes the checksum a listing promises for a file: sha256 of the content for LFS files, else the git
/// blob id, sha1 of <c>"blob {size}\0"</c> followed by the content.
/// </summary>
internal static class ContentHasher
{
    public static string AlgorithmName(HubFile file) => file.IsLfs ? "sha256" : "git blob sha1";

    public static async Task<string> HashFileAsync(HubFile file, string path, CancellationToken cancellation)
    {
        using var hash = IncrementalHash.CreateHash(file.IsLfs ? HashAlgorithmName.SHA256 : HashAlgorithmName.SHA1);
        if (!file.IsLfs) hash.AppendData(Encoding.ASCII.GetBytes($"blob {new FileInfo(path).Length}\0"));
        byte[] buffer = new byte[1 << 20];
        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, useAsync: true);
        int n;
        while ((n = await stream.ReadAsync(buffer, cancellation)) > 0)
            hash.AppendData(buffer, 0, n);
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }
}
