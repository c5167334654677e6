namespace FinQLoRA.Hub;

/// <summary>
/// One file of a repo listing. <see cref="Oid"/> is the git blob id (sha1 of <c>"blob {size}\0" + content</c>);
/// for files stored in LFS, <see cref="Sha256"/> is the LFS object id (sha256 of the content) and the
/// git oid belongs to the pointer file instead.
/// </summary>
public sealed record HubFile(string Path, long Size, string Oid, string? Sha256)
{
    public bool IsLfs => Sha256 != null;

    /// <summary>The checksum the downloaded content is verified against: the LFS sha256, else the git blob sha1.</summary>
    public string ContentId => Sha256 ?? Oid;
}
