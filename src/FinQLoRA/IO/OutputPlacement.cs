namespace FinQLoRA.IO;

/// <summary>
/// The one rule for where a command may write, checked before any work starts: an output is never an input, never
/// contains one and never lies inside an input folder; an existing folder is replaced only when FinQLoRA wrote it
/// (<see cref="OutputMarker"/>) and the user passed <c>--overwrite</c>; an existing file only with <c>--overwrite</c>;
/// the place must be writable. Writers then build the new content beside the output and rename it into place
/// (<see cref="AtomicFile"/>), so nothing outside the output path is ever touched.
/// </summary>
public static class OutputPlacement
{
    /// <summary>Checks a folder output (a model, an adapter, a report, a run folder).</summary>
    /// <param name="inputs">every file or folder the command reads (missing or null entries are ignored)</param>
    public static void CheckFolder(string output, IEnumerable<string?> inputs, bool overwrite, string field = "out")
    {
        string out_ = CheckAgainstInputs(output, inputs, field);
        if (File.Exists(out_)) throw UserInputException.About($"{new ConfigField(field)} {output}: is a file; give a folder path");
        if (!OutputMarker.IsEmptyOrMissing(out_))
        {
            if (!OutputMarker.IsMarked(out_))
                throw UserInputException.About($"{new ConfigField(field)} {output}: the folder is not empty and holds files FinQLoRA did not write; choose a new or empty folder");
            if (!overwrite)
                throw UserInputException.About($"{new ConfigField(field)} {output}: the folder is not empty (FinQLoRA wrote it earlier); pass {new ConfigField("overwrite")} to replace it, or choose a new folder");
        }
        CheckWritable(output, Directory.Exists(out_) ? out_ : FileSystemPaths.NearestExistingFolder(out_), field);
    }

    /// <summary>Only the input and writability rules, for outputs whose existing content follows rules of their own
    /// (a training run folder is continued with --resume, never replaced).</summary>
    public static void CheckInputsAndWritable(string output, IEnumerable<string?> inputs, string field = "out")
    {
        string out_ = CheckAgainstInputs(output, inputs, field);
        CheckWritable(output, FileSystemPaths.NearestExistingFolder(out_), field);
    }

    /// <summary>Checks a single-file output (a .gguf, a JSONL).</summary>
    public static void CheckFile(string output, IEnumerable<string?> inputs, bool overwrite, string field = "out")
    {
        string out_ = CheckAgainstInputs(output, inputs, field);
        if (Directory.Exists(out_)) throw UserInputException.About($"{new ConfigField(field)} {output}: is a folder; give a file path");
        if (File.Exists(out_) && !overwrite)
            throw UserInputException.About($"{new ConfigField(field)} {output}: the file exists; pass {new ConfigField("overwrite")} to replace it, or choose a new file");
        CheckWritable(output, FileSystemPaths.NearestExistingFolder(Path.GetDirectoryName(out_) ?? "/"), field);
    }

    /// <summary>Empties a folder for a command that always replaces its own earlier output (the demo). Only a folder
    /// FinQLoRA marked as its own is removed; anything else is refused.</summary>
    public static void ClearOwnFolder(string folder)
    {
        if (OutputMarker.IsEmptyOrMissing(folder)) return;
        if (!OutputMarker.IsMarked(folder))
            throw new UserInputException($"{folder}: the folder is not empty and holds files FinQLoRA did not write; choose a new or empty folder");
        Directory.Delete(folder, recursive: true);
    }

    /// <returns>the output's canonical path</returns>
    private static string CheckAgainstInputs(string output, IEnumerable<string?> inputs, string field)
    {
        if (string.IsNullOrWhiteSpace(output)) throw UserInputException.About($"{new ConfigField(field)} is required");
        string out_ = FileSystemPaths.Canonical(output);
        foreach (string? input in inputs)
        {
            if (string.IsNullOrEmpty(input) || !Path.Exists(input)) continue;
            string in_ = FileSystemPaths.Canonical(input);
            if (in_ == out_)
                throw UserInputException.About($"{new ConfigField(field)} {output}: is the input {input}; choose a new path so the input is kept");
            if (FileSystemPaths.IsSameOrInside(in_, out_))
                throw UserInputException.About($"{new ConfigField(field)} {output}: contains the input {input}; choose a path outside the inputs");
            if (Directory.Exists(in_) && FileSystemPaths.IsSameOrInside(out_, in_))
                throw UserInputException.About($"{new ConfigField(field)} {output}: lies inside the input folder {input}; choose a path outside it");
        }
        return out_;
    }

    private static void CheckWritable(string output, string folder, string field)
    {
        if (!FileSystemPaths.IsWritableFolder(folder))
            throw UserInputException.About($"{new ConfigField(field)} {output}: cannot write in {folder} (read-only or permission denied); choose a writable location");
    }
}
