using System.Globalization;
using System.Text.RegularExpressions;
using FinQLoRA.IO;

namespace FinQLoRA.Server.Tenancy;

/// <summary>
/// The keys file of <c>finqlora serve --keys FILE</c> (YAML or JSON by extension):
/// <code>
/// keys:
///   - id: desk-a
///     sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
///     models: ["desk-a-*"]
///     requests_per_minute: 60
///     tokens_per_minute: 20000
///     can_manage_adapters: false
/// </code>
/// Read and checked completely before a model loads: an unknown key, a missing or mistyped field, a duplicate id or
/// hash, bad hex or a bad glob is one line naming the file, the entry (and the line, for YAML) and the fix.
/// </summary>
public static partial class KeysFile
{
    private static readonly string[] Fields = ["id", "sha256", "models", "requests_per_minute", "tokens_per_minute", "can_manage_adapters"];

    /// <summary>Every key of the file; throws <see cref="UserInputException"/> for a missing or bad file.</summary>
    public static IReadOnlyList<TenantKey> Read(string path)
    {
        if (!File.Exists(path)) throw new UserInputException($"{path}: keys file not found; create it with 'finqlora serve-keys add --keys {path} --id ID --models NAMES'");
        var keys = Parse(path, File.ReadAllText(path));
        if (keys.Count == 0) throw new UserInputException($"{path}: holds no keys, so every request would be refused; add one with 'finqlora serve-keys add --keys {path} --id ID --models NAMES'");
        return keys;
    }

    /// <summary>The keys of a file's text (none for an empty file).</summary>
    public static List<TenantKey> Parse(string path, string text)
    {
        var keys = new List<TenantKey>();
        var ids = new Dictionary<string, string>(StringComparer.Ordinal);
        var hashes = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var entry in KeysFileFormat.Read(path, text))
        {
            var key = Check(entry);
            if (!ids.TryAdd(key.Id, entry.Where))
                throw new UserInputException($"{entry.Where}.id: '{key.Id}' is also the id of {ids[key.Id]}; ids must be unique (they name the key in logs and limits)");
            string hex = ApiKeyHash.Hex(key.Sha256);
            if (!hashes.TryAdd(hex, key.Id))
                throw new UserInputException($"{entry.Where}.sha256: the same hash as key '{hashes[hex]}'; one key cannot have two ids: generate a new key for '{key.Id}'");
            keys.Add(key);
        }
        return keys;
    }

    /// <summary>Adds <paramref name="key"/> to the file (created when absent) and writes it atomically (a temp file
    /// renamed into place, the old file's permissions kept). A YAML file gets the entry appended as text, so that its
    /// comments and layout stay as they were; a JSON file is rewritten (JSON has no comments to lose).</summary>
    public static void Add(string path, TenantKey key)
    {
        KeysFileFormat.CheckExtension(path);
        using var writer = WriterLock(path);
        string text = File.Exists(path) ? File.ReadAllText(path) : "";
        var keys = Parse(path, text);
        if (keys.Any(k => k.Id == key.Id))
            throw new UserInputException($"{path}: already holds a key with id '{key.Id}'; choose another id (or remove the old entry first to replace it)");
        if (IdProblem(key.Id) is { } problem) throw new UserInputException($"{path}: {problem}");
        string updated = KeysFileFormat.IsJson(path) || keys.Count == 0 && text.Trim().Length == 0
            ? KeysFileFormat.Write(path, [.. keys, key])
            : Appended(path, text, keys, key);
        Parse(path, updated); // what is written reads back by the server's rules (a hash shared with another key is refused here)
        UnixFileMode? mode = File.Exists(path) && !OperatingSystem.IsWindows() ? File.GetUnixFileMode(path) : null;
        AtomicFile.Write(path, stream =>
        {
            if (mode is { } m && !OperatingSystem.IsWindows()) File.SetUnixFileMode(((FileStream)stream).SafeFileHandle, m);
            stream.Write(new System.Text.UTF8Encoding(false).GetBytes(updated));
        });
    }

    /// <summary>One writer at a time, so that two adds cannot both read the old file and one entry be lost: an exclusive
    /// open of <c>FILE.lock</c> (an advisory lock the kernel drops when a killed writer's process ends).</summary>
    private static FileStream WriterLock(string path)
    {
        string lockPath = Path.GetFullPath(path) + ".lock";
        Directory.CreateDirectory(Path.GetDirectoryName(lockPath)!);
        for (int attempt = 0; ; attempt++)
        {
            try { return new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose); }
            catch (IOException) when (attempt < 50) { Thread.Sleep(100); }
            catch (IOException) { throw new UserInputException($"{path}: another writer holds {lockPath} for more than 5 s; try again when it is done"); }
        }
    }

    /// <summary>The YAML text with the entry appended to the 'keys' list, proved by reading it back: the old keys and
    /// then the new one, nothing else.</summary>
    private static string Appended(string path, string text, List<TenantKey> keys, TenantKey key)
    {
        var indent = ItemIndent().Match(text);
        string head = text.EndsWith('\n') ? text : text + "\n";
        if (!KeysLine().IsMatch(text)) head += "keys:\n"; // a file of comments only
        string updated = head + KeysFileFormat.YamlEntry(key, indent.Success ? indent.Groups[1].Value : "  ");
        List<TenantKey> back;
        try { back = Parse(path, updated); }
        catch (UserInputException) { back = []; }
        if (back.Count != keys.Count + 1 || back[^1].Id != key.Id || !back.Take(keys.Count).Select(k => k.Id).SequenceEqual(keys.Select(k => k.Id)))
            throw new UserInputException($"{path}: the entry cannot be appended as text (the 'keys' list is not the file's last block list of '- id: …' items); end the file with the list in block style, or use a .json keys file");
        return updated;
    }

    private static TenantKey Check(KeysFileFormat.Entry entry)
    {
        string? id = null, sha = null;
        ModelGrant? models = null;
        int? rpm = null, tpm = null;
        bool manage = false;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, value) in entry.Fields)
        {
            if (!seen.Add(name)) throw new UserInputException($"{value.Where}: given twice in one entry; keep one");
            switch (name)
            {
                case "id":
                    id = Text(value);
                    if (IdProblem(id) is { } problem) throw new UserInputException($"{value.Where}: {problem}");
                    break;
                case "sha256":
                    sha = Text(value);
                    if (!HexPattern().IsMatch(sha))
                        throw new UserInputException($"{value.Where}: not 64 hex digits (got {sha.Length} characters); give the key's SHA-256 as 'printf %s \"$KEY\" | sha256sum' prints it, never the key itself");
                    break;
                case "models":
                    if (value.Kind != KeysFileValue.Kinds.List)
                        throw new UserInputException($"{value.Where}: must be a list of names or globs, e.g. [\"desk-a-*\", \"base-model\"], or [\"*\"] for all");
                    try { models = ModelGrant.Of([.. value.Items!.Select(Text)]); }
                    catch (ArgumentException e) { throw new UserInputException($"{value.Where}: {e.Message}"); }
                    break;
                case "requests_per_minute": rpm = PerMinute(value); break;
                case "tokens_per_minute": tpm = PerMinute(value); break;
                case "can_manage_adapters": manage = Flag(value); break;
                default:
                    throw new UserInputException($"{value.Where}: unknown key; an entry has {string.Join(", ", Fields)}");
            }
        }
        if (id is null) throw new UserInputException($"{entry.Where}: has no 'id'; give each key a unique id (letters, digits, '.', '_', '-')");
        if (sha is null) throw new UserInputException($"{entry.Where} (id '{id}'): has no 'sha256'; add the key's hash, or make a key with 'finqlora serve-keys add'");
        if (models is null) throw new UserInputException($"{entry.Where} (id '{id}'): has no 'models'; list the names or globs it may use ([\"*\"] for all)");
        return new TenantKey(id, Convert.FromHexString(sha), models) { RequestsPerMinute = rpm, TokensPerMinute = tpm, CanManageAdapters = manage };
    }

    /// <summary>Why <paramref name="id"/> cannot name a key, or null when it can.</summary>
    public static string? IdProblem(string id) =>
        !IdPattern().IsMatch(id) ? $"'{id}' is not an id: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        : id == TenantKey.AnonymousId ? $"'{id}' is the id of requests without a key; choose another"
        : null;

    private static string Text(KeysFileValue v) => v.Kind is KeysFileValue.Kinds.String or KeysFileValue.Kinds.Plain
        ? v.Text!
        : throw new UserInputException($"{v.Where}: must be a string");

    private static int PerMinute(KeysFileValue v)
    {
        if (v.Kind is KeysFileValue.Kinds.Number or KeysFileValue.Kinds.Plain
            && int.TryParse(v.Text, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n >= 1)
            return n;
        throw new UserInputException($"{v.Where}: must be a whole number >= 1 (got {v.Text ?? v.Kind.ToString().ToLowerInvariant()}); leave it out for no limit");
    }

    private static bool Flag(KeysFileValue v) =>
        v.Kind is KeysFileValue.Kinds.Bool or KeysFileValue.Kinds.Plain && v.Text is "true" or "false"
            ? v.Text == "true"
            : throw new UserInputException($"{v.Where}: must be true or false (got {v.Text ?? v.Kind.ToString().ToLowerInvariant()})");

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    private static partial Regex IdPattern();

    [GeneratedRegex("^[0-9A-Fa-f]{64}$")]
    private static partial Regex HexPattern();

    [GeneratedRegex(@"^keys\s*:", RegexOptions.Multiline)]
    private static partial Regex KeysLine();

    /// <summary>The indentation of the first '- ' item of a block list (the file's own, for an appended entry).</summary>
    [GeneratedRegex(@"^([ \t]*)- ", RegexOptions.Multiline)]
    private static partial Regex ItemIndent();
}
