using System.Threading.Channels;

namespace FinQLoRA.Server.Audit;

/// <summary>
/// The audit log: JSONL appended to one file by one writer thread, whichever request thread ended the request. Each
/// line goes to the file in one write(2) of the whole line with its '\n' (no buffer in between), so a process killed
/// between two writes leaves whole lines only: the kernel has every line written before the kill. Lines are then
/// fsynced as a group commit: after the writer has emptied its queue (at most <see cref="LinesPerSync"/> lines), one
/// fsync puts them all on disk, so that a power loss costs at most the lines since the last fsync. An fsync per line
/// would give no line an earlier durability and caps the log at one line per disk flush (about 150 lines/s on the
/// virtual disk we measured, fewer than a small model answers), while the queue of the lines waiting grows.
/// A line that would take the file past its size limit rotates it first (<see cref="AuditLogFiles.Rotate"/>). A file
/// left by a crash mid-write on a file system that kept part of a line gets a '\n' first, so new lines never continue
/// the torn one.
/// </summary>
internal sealed class AuditLog : IAsyncDisposable
{
    /// <summary>Lines written between two fsyncs at most, so that a steady stream of lines is still synced often.</summary>
    internal const int LinesPerSync = 256;

    private readonly string _path;
    private readonly long _maxBytes;
    private readonly int _keep;
    private readonly Channel<byte[]> _lines = Channel.CreateUnbounded<byte[]>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Thread _writer;
    private readonly TaskCompletionSource _written = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private bool _rotationFailed; // said once on stderr; the file then grows until the next start
    private FileStream? _file; // null after a rotation or an open that failed: the next line opens it

    private AuditLog(string path, long maxBytes, int keep, bool includeContent)
    {
        _path = path;
        _maxBytes = maxBytes;
        _keep = keep;
        IncludeContent = includeContent;
        _file = OpenForAppend(path);
        _writer = new Thread(WriteLines) { IsBackground = true, Name = "finqlora audit log" };
        _writer.Start();
    }

    public bool IncludeContent { get; }

    /// <summary>Opens (or creates) the log of <paramref name="options"/>, checked by <see cref="AuditLogOptions.Validate"/>.</summary>
    public static AuditLog Open(AuditLogOptions options) =>
        Open(Path.GetFullPath(options.Path), options.MaxBytes, options.Keep, options.IncludeContent);

    /// <summary>A log that rotates past <paramref name="maxBytes"/> (the tests rotate after a few lines).</summary>
    internal static AuditLog Open(string path, long maxBytes, int keep, bool includeContent)
    {
        try { return new AuditLog(path, maxBytes, keep, includeContent); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UserInputException($"--audit-log {path}: cannot open it for appending ({e.Message}); check the path and its permissions");
        }
    }

    /// <summary>Queues one line; the writer thread writes it. Never blocks a request on the disk.</summary>
    public void Append(byte[] line) => _lines.Writer.TryWrite(line);

    /// <summary>Writes every queued line, then closes the file.</summary>
    public async ValueTask DisposeAsync()
    {
        _lines.Writer.TryComplete();
        await _written.Task.ConfigureAwait(false);
    }

    private static FileStream OpenForAppend(string path)
    {
        // bufferSize 0: every Write is one write(2) of the whole line; Sync() fsyncs them.
        var file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read, bufferSize: 0);
        try
        {
            bool torn = AuditLogFiles.EndsTorn(file);
            file.Seek(0, SeekOrigin.End);
            if (torn)
            {
                Console.Error.WriteLine($"finqlora serve: --audit-log {path}: its last line was cut short (a crash mid-write); new lines start on a line of their own");
                file.Write("\n"u8);
            }
            return file;
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    private void WriteLines()
    {
        try
        {
            while (_lines.Reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
            {
                for (int n = 0; n < LinesPerSync && _lines.Reader.TryRead(out var line); n++) Write(line);
                Sync();
            }
        }
        finally
        {
            _file?.Dispose();
            _written.TrySetResult();
        }
    }

    private void Write(byte[] line)
    {
        try
        {
            _file ??= OpenForAppend(_path);
            if (!_rotationFailed && _file.Length > 0 && _file.Length + line.Length > _maxBytes)
            {
                _file.Flush(flushToDisk: true); // its last lines on disk before it is renamed
                _file.Dispose();
                _file = null;
                Rotate();
                _file = OpenForAppend(_path);
            }
            _file.Write(line);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The request was answered already; say that its line is missing rather than stop serving.
            Console.Error.WriteLine($"finqlora serve: --audit-log {_path}: a line could not be written ({e.Message})");
        }
    }

    /// <summary>fsync: every line written so far is on disk.</summary>
    private void Sync()
    {
        try { _file?.Flush(flushToDisk: true); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"finqlora serve: --audit-log {_path}: lines could not be synced to disk ({e.Message})");
        }
    }

    private void Rotate()
    {
        try { AuditLogFiles.Rotate(_path, _keep); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _rotationFailed = true;
            Console.Error.WriteLine($"finqlora serve: --audit-log {_path}: could not rotate ({e.Message}); appending to it past --audit-log-max-mib");
        }
    }
}
