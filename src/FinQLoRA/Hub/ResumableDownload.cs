using System.Net;

namespace FinQLoRA.Hub;

/// <summary>
/// Downloads one file into its <c>.incomplete</c> partial in the cache, resuming with an HTTP Range request
/// wherever a cut connection or an earlier run stopped, then checks size and checksum and renames it into place.
/// A mismatch deletes the partial so that the next run starts clean.
/// </summary>
internal sealed class ResumableDownload(HubHttp http, HubCache cache, HubSettings settings)
{
    private const int BufferSize = 1 << 20;

    public async Task<string> DownloadAsync(HubRepo repo, HubFile file, IHubTransferObserver? observer, CancellationToken cancellation)
    {
        cache.ForgetVerified(repo, file);
        cache.PreparePartial(repo, file);
        string partial = cache.PartialPath(repo, file);
        Uri url = new(settings.Endpoint, repo.ResolveUrl(file.Path));
        observer?.FileStarted(file, Math.Min(LengthOf(partial), file.Size));

        var retry = new RetryLoop(settings, observer, file.Path, url);
        while (true)
        {
            try
            {
                retry.Attempting();
                if (await AttemptAsync(repo, file, url, partial, retry, observer, cancellation)) break;
            }
            catch (Exception e) when (RetryLoop.IsTransient(e, cancellation))
            {
                await retry.FailedAsync(e, cancellation);
            }
        }

        await VerifyAsync(repo, file, partial, cancellation);
        string final = cache.FilePath(repo, file);
        File.Move(partial, final, overwrite: true);
        cache.MarkVerified(repo, file);
        cache.ForgetPartial(repo, file);
        return final;
    }

    /// <summary>One request from the end of the partial file; true once the partial holds <see cref="HubFile.Size"/> bytes.</summary>
    private async Task<bool> AttemptAsync(HubRepo repo, HubFile file, Uri url, string partial, RetryLoop retry, IHubTransferObserver? observer, CancellationToken cancellation)
    {
        long have = LengthOf(partial);
        if (have > file.Size) { File.Delete(partial); have = 0; }
        if (have == file.Size)
        {
            // An empty file needs no request, only its (empty) partial to verify and rename.
            if (!File.Exists(partial)) File.Create(partial).Dispose();
            return true;
        }

        using HttpResponseMessage response = await http.GetAsync(url, have, repo, file.Path, cancellation);
        if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
        {
            // The server disagrees about what we hold; start over without a range (so this cannot repeat).
            File.Delete(partial);
            return false;
        }
        // A server may ignore the range and send the whole file (200), or another range: then start over.
        bool append = have > 0 && response.StatusCode == HttpStatusCode.PartialContent && response.Content.Headers.ContentRange?.From == have;
        if (!append) have = 0;
        observer?.BytesOnDisk(file, have);

        await using Stream body = await response.Content.ReadAsStreamAsync(cancellation);
        await using var output = new FileStream(partial, append ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.None, 1, useAsync: true);
        byte[] buffer = new byte[BufferSize];
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        while (true)
        {
            idle.CancelAfter(settings.Retry.IdleTimeout);
            int n;
            try
            {
                n = await body.ReadAsync(buffer, idle.Token);
            }
            catch (OperationCanceledException) when (!cancellation.IsCancellationRequested)
            {
                throw new TimeoutException($"no data for {settings.Retry.IdleTimeout.TotalSeconds:F0}s at byte {have} of {file.Size}");
            }
            if (n == 0) break;
            if (have + n > file.Size) throw await DiscardPartialAsync(repo, file, output, HubErrors.SizeMismatch(repo, file, have + n));
            await output.WriteAsync(buffer.AsMemory(0, n), cancellation);
            have += n;
            retry.Progressed();
            observer?.BytesOnDisk(file, have);
        }
        // The body ended cleanly (a cut connection throws instead): the server's file is shorter than listed.
        if (have != file.Size) throw await DiscardPartialAsync(repo, file, output, HubErrors.SizeMismatch(repo, file, have));
        return true;
    }

    private async Task<UserInputException> DiscardPartialAsync(HubRepo repo, HubFile file, FileStream output, UserInputException error)
    {
        await output.DisposeAsync();
        cache.ForgetPartial(repo, file);
        return error;
    }

    private async Task VerifyAsync(HubRepo repo, HubFile file, string partial, CancellationToken cancellation)
    {
        long length = LengthOf(partial);
        if (length != file.Size)
        {
            cache.ForgetPartial(repo, file);
            throw HubErrors.SizeMismatch(repo, file, length);
        }
        string actual = await ContentHasher.HashFileAsync(file, partial, cancellation);
        if (!string.Equals(actual, file.ContentId, StringComparison.OrdinalIgnoreCase))
        {
            cache.ForgetPartial(repo, file);
            throw HubErrors.ChecksumMismatch(repo, file, ContentHasher.AlgorithmName(file), actual);
        }
    }

    private static long LengthOf(string path) => File.Exists(path) ? new FileInfo(path).Length : 0;
}
