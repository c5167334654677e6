using System.Text;

namespace FinQLoRA.Data.Tasks;

/// <summary>File reading shared by the source readers: existence check with a clear message, and text decoding.</summary>
internal static class SourceFiles
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static byte[] ReadBytes(string path)
    {
        if (!File.Exists(path)) throw UserInputException.About($"{path}: source file not found; pass an existing file with {new ConfigField("source")}");
        return File.ReadAllBytes(path);
    }

    public static string ReadUtf8(string path)
    {
        byte[] bytes = ReadBytes(path);
        try { return StripBom(StrictUtf8.GetString(bytes)); }
        catch (DecoderFallbackException) { throw new UserInputException($"{path}: not valid UTF-8; re-encode the file as UTF-8"); }
    }

    /// <summary>UTF-8 when the bytes are valid UTF-8, else Latin-1. The Financial PhraseBank ships in Latin-1,
    /// but some copies were re-encoded to UTF-8 (shared/data's Sentences_AllAgree.txt); a Latin-1 file with
    /// accented letters is almost never valid UTF-8, so the check tells them apart.</summary>
    public static string ReadUtf8OrLatin1(string path)
    {
        byte[] bytes = ReadBytes(path);
        try { return StripBom(StrictUtf8.GetString(bytes)); }
        catch (DecoderFallbackException) { return Encoding.Latin1.GetString(bytes); }
    }

    /// <summary>Splits text into lines (\n or \r\n), numbered from 1, dropping a final empty line.</summary>
    public static IEnumerable<(int Line, string Text)> Lines(string text)
    {
        var lines = text.Split('\n');
        int count = lines.Length > 0 && lines[^1].Length == 0 ? lines.Length - 1 : lines.Length;
        for (int i = 0; i < count; i++) yield return (i + 1, lines[i].TrimEnd('\r'));
    }

    private static string StripBom(string s) => s.Length > 0 && s[0] == '\uFEFF' ? s[1..] : s;
}
