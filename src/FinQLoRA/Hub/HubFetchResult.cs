namespace FinQLoRA.Hub;

/// <summary>What <see cref="HubClient.FetchAsync"/> placed in <see cref="OutDirectory"/>.</summary>
public sealed record HubFetchResult(HubRepo Repo, string OutDirectory, IReadOnlyList<HubFetchedFile> Files)
{
    public int DownloadedCount => Files.Count(f => !f.FromCache);

    public int CachedCount => Files.Count(f => f.FromCache);

    public long TotalBytes => Files.Sum(f => f.File.Size);
}
