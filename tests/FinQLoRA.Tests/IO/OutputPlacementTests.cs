using FinQLoRA.IO;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.IO;

/// <summary>The one output rule: never an input, never around or inside one, foreign folders never replaced.</summary>
public sealed class OutputPlacementTests
{
    private static UserInputException Refused(Action check) => Assert.Throws<UserInputException>(check);

    [Fact]
    public void AnOutputThatIsContainsOrLiesInsideAnInputIsRefused()
    {
        using var dir = new TempFolder();
        string model = Path.Combine(dir.Path, "model");
        Directory.CreateDirectory(model);
        File.WriteAllText(Path.Combine(model, "notes.txt"), "mine");
        string data = Path.Combine(dir.Path, "s.jsonl");
        File.WriteAllText(data, "{}\n");

        Assert.Contains("is the input", Refused(() => OutputPlacement.CheckFolder(model, [model], overwrite: true)).Message);
        Assert.Contains("contains the input", Refused(() => OutputPlacement.CheckFolder(dir.Path, [model], overwrite: true)).Message);
        Assert.Contains("inside the input folder", Refused(() => OutputPlacement.CheckFile(Path.Combine(model, "model.safetensors"), [model], overwrite: true)).Message);
        Assert.Contains("is the input", Refused(() => OutputPlacement.CheckFile(data, [data], overwrite: true)).Message);
        // through a symbolic link too
        string link = Path.Combine(dir.Path, "link");
        Directory.CreateSymbolicLink(link, model);
        Assert.Contains("is the input", Refused(() => OutputPlacement.CheckFolder(link, [model], overwrite: true)).Message);
        Assert.Contains("inside the input folder", Refused(() => OutputPlacement.CheckFile(Path.Combine(link, "x.gguf"), [model], overwrite: true)).Message);
        Assert.Equal("mine", File.ReadAllText(Path.Combine(model, "notes.txt")));
    }

    [Fact]
    public void AForeignFolderIsNeverReplacedAndAnOwnOneOnlyWithOverwrite()
    {
        using var dir = new TempFolder();
        string foreign = Path.Combine(dir.Path, "foreign");
        Directory.CreateDirectory(foreign);
        File.WriteAllText(Path.Combine(foreign, "a.txt"), "keep");
        Assert.Contains("FinQLoRA did not write", Refused(() => OutputPlacement.CheckFolder(foreign, [], overwrite: true)).Message);
        Assert.Contains("did not write", Refused(() => AtomicFile.WriteDirectory(foreign, _ => { })).Message);
        Assert.Equal("keep", File.ReadAllText(Path.Combine(foreign, "a.txt")));

        string own = Path.Combine(dir.Path, "own");
        AtomicFile.WriteDirectory(own, t => File.WriteAllText(Path.Combine(t, "v1"), "1"));
        Assert.True(OutputMarker.IsMarked(own));
        Assert.Contains("--overwrite", FinQLoRA.Cli.FlagNames.Render(Refused(() => OutputPlacement.CheckFolder(own, [], overwrite: false))));
        OutputPlacement.CheckFolder(own, [], overwrite: true);
        AtomicFile.WriteDirectory(own, t => File.WriteAllText(Path.Combine(t, "v2"), "2"));
        Assert.Equal(["v2"], Directory.GetFiles(own).Select(Path.GetFileName).Where(n => n != OutputMarker.FileName));
        Assert.Equal("keep", File.ReadAllText(Path.Combine(foreign, "a.txt")));
        // a folder holding only FinQLoRA's marker (a command that stopped before writing) counts as empty
        string stopped = Path.Combine(dir.Path, "stopped");
        Directory.CreateDirectory(stopped);
        OutputMarker.Write(stopped, "test");
        OutputPlacement.CheckFolder(stopped, [], overwrite: false);
    }

    [Fact]
    public void FilesAndFoldersInTheWrongPlaceAreNamed()
    {
        using var dir = new TempFolder();
        string file = Path.Combine(dir.Path, "f.txt");
        File.WriteAllText(file, "x");
        Assert.Contains("is a file", Refused(() => OutputPlacement.CheckFolder(file, [], overwrite: true)).Message);
        Assert.Contains("is a folder", Refused(() => OutputPlacement.CheckFile(dir.Path, [], overwrite: true)).Message);
        Assert.Contains("--overwrite", FinQLoRA.Cli.FlagNames.Render(Refused(() => OutputPlacement.CheckFile(file, [], overwrite: false))));
        OutputPlacement.CheckFile(file, [], overwrite: true);
        Assert.Contains("a file stands where a folder is needed", Refused(() => AtomicFile.WriteAllText(Path.Combine(file, "below.txt"), "y")).Message);
    }

    [Fact]
    public void DiskFullWhileWritingIsOneLineAndLeavesNoTempFile()
    {
        // /dev/full answers every write with ENOSPC, as a full disk does
        var e = Assert.ThrowsAny<IOException>(() =>
        {
            using var s = new FileStream("/dev/full", FileMode.Open, FileAccess.Write);
            s.Write(new byte[4096]);
            s.Flush();
        });
        var user = WriteFailure.Describe(e, "out.gguf");
        Assert.NotNull(user);
        Assert.Contains("no space left", user!.Message);
        Assert.Null(WriteFailure.Describe(new EndOfStreamException("truncated input"), "out.gguf"));
    }
}
