namespace FinQLoRA.Hub;

/// <summary>Hears what the client does, to draw progress (the CLI renders it with Spectre.Console).</summary>
public interface IHubTransferObserver
{
    /// <summary>A file is about to be fetched; <paramref name="bytesAlreadyPresent"/> came from an earlier cut download.</summary>
    void FileStarted(HubFile file, long bytesAlreadyPresent);

    /// <summary>The partial file now holds <paramref name="bytesOnDisk"/> of <see cref="HubFile.Size"/> bytes.</summary>
    void BytesOnDisk(HubFile file, long bytesOnDisk);

    /// <summary>The file is verified in the cache; <paramref name="fromCache"/> when nothing had to be downloaded.</summary>
    void FileFinished(HubFile file, bool fromCache);

    /// <summary>A request failed and will be retried after <paramref name="delay"/>.</summary>
    void Retrying(string what, int failures, TimeSpan delay, string reason);
}
