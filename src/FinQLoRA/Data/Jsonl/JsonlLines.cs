using System.Buffers;
using System.Text.Unicode;

namespace FinQLoRA.Data.Jsonl;

/// <summary>
/// The one way FinQLoRA reads JSONL: the file is streamed line by line, each line is decoded as strict UTF-8 and
/// capped in length, and every problem names the file and the line number.
/// <para>
/// Why not <c>File.ReadLines</c>: it replaces invalid UTF-8 with U+FFFD without a word (a Latin-1 file became
/// training data with '?' in it), and it materialises a line however long it is — one 50 MB line took 1.7 GB of
/// resident memory in <c>data stats</c>, because the line, its string, its JSON document and the parsed strings
/// all coexist. Here a line is collected as bytes and refused as soon as it passes <see cref="MaxLineBytes"/>,
/// so memory stays bounded by the cap whatever the file holds.
/// </para>
/// </summary>
public static class JsonlLines
{
    /// <summary>
    /// 16 MiB. Generous on purpose: the longest real examples (FinanceBench's filings excerpts, XBRL contexts) are
    /// a few hundred KB, and a Llama 3.1 context of 128K tokens is about 0.5 MB of text, so no line that could
    /// ever be trained on or scored comes near it; a longer line is a broken file (a missing newline, a binary
    /// file) and costs a few tens of MB to refuse instead of gigabytes.
    /// </summary>
    public const int MaxLineBytes = 16 << 20;

    /// <summary>
    /// The lines of <paramref name="path"/> (split at '\n', a trailing '\r' dropped, a leading UTF-8 BOM skipped),
    /// numbered from 1, blank lines included so numbers match an editor's. Throws <see cref="UserInputException"/>
    /// for a missing file, invalid UTF-8 or a line over <paramref name="maxLineBytes"/>.
    /// </summary>
    public static IEnumerable<(int Line, string Text)> Read(string path, int maxLineBytes = MaxLineBytes)
    {
        if (!File.Exists(path)) throw new UserInputException($"{path}: file not found; expected a JSONL file (one JSON object per line)");
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.SequentialScan);
        var buffer = new byte[1 << 16];
        var line = new LineBuffer(path, maxLineBytes);
        int lineNo = 1;
        int n;
        while ((n = stream.Read(buffer)) > 0)
        {
            int start = 0;
            for (int newline; (newline = Array.IndexOf(buffer, (byte)'\n', start, n - start)) >= 0; start = newline + 1)
            {
                line.Append(buffer.AsSpan(start, newline - start), lineNo);
                yield return (lineNo, line.TakeText(lineNo));
                lineNo++;
            }
            line.Append(buffer.AsSpan(start, n - start), lineNo);
        }
        if (line.Length > 0) yield return (lineNo, line.TakeText(lineNo));
    }

    /// <summary>The bytes of the current line, grown as needed up to the cap.</summary>
    private sealed class LineBuffer(string path, int maxBytes)
    {
        private byte[] _bytes = new byte[4096];
        private bool _first = true;

        public int Length { get; private set; }

        public void Append(ReadOnlySpan<byte> part, int lineNo)
        {
            if ((long)Length + part.Length > maxBytes)
                throw new UserInputException($"{path}:{lineNo}: line is longer than {Describe(maxBytes)} (the limit for one JSONL line); the file is damaged or not JSONL — each line must be one JSON object followed by a newline");
            if (Length + part.Length > _bytes.Length)
                Array.Resize(ref _bytes, (int)Math.Min(maxBytes, Math.Max(2L * _bytes.Length, Length + part.Length)));
            part.CopyTo(_bytes.AsSpan(Length));
            Length += part.Length;
        }

        public string TakeText(int lineNo)
        {
            var span = _bytes.AsSpan(0, Length);
            if (_first && span.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF])) span = span[3..];
            if (span.Length > 0 && span[^1] == '\r') span = span[..^1];
            _first = false;
            Length = 0;
            // Utf8.ToUtf16 stops at the first invalid sequence and says where, in bytes (a UTF-16 line never has
            // more chars than the UTF-8 line has bytes).
            var chars = new char[span.Length];
            if (Utf8.ToUtf16(span, chars, out int read, out int written, replaceInvalidSequences: false) != OperationStatus.Done)
                throw new UserInputException($"{path}:{lineNo}: not valid UTF-8 (byte 0x{span[read]:X2} at byte {read + 1} of the line); re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)");
            return new string(chars, 0, written);
        }

        private static string Describe(int bytes) => bytes % (1 << 20) == 0 ? $"{bytes >> 20} MiB" : $"{bytes} bytes";
    }
}
