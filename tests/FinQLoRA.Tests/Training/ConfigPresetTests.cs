using FinQLoRA.Tests.Support;
using FinQLoRA.Training;

namespace FinQLoRA.Tests.Training;

/// <summary>The YAML presets in configs/ and the validation of run configs (<c>finqlora train --config FILE</c>).</summary>
public sealed class ConfigPresetTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("finqlora-config-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string[] Presets => Directory.GetFiles(Path.Combine(Shared.RepoRoot, "configs"), "*.yaml");

    /// <summary>The YAML values with model/data set as the user's --model/--data flags would.</summary>
    private static TrainConfig Load(string file)
    {
        var values = TrainConfig.ReadYaml(file);
        values["model"] = "/models/llama";
        values["data"] = "data/train.jsonl";
        return TrainConfig.FromValues(values, file);
    }

    [Fact]
    public void EveryPresetParsesOnceModelAndDataAreGiven()
    {
        Assert.True(Presets.Length >= 5, $"expected the five FinLoRA presets in configs/, found {Presets.Length}");
        foreach (string file in Presets)
        {
            var c = Load(file);
            Assert.Equal("zero-one-adam", FinQLoRA.Training.Optimizers.OptimizerKinds.Spellings.Name(c.Optimizer));
            Assert.Equal((32.0, 0.1, 1e-4, "q_proj,k_proj,v_proj"), (c.Alpha, c.Dropout, c.Lr, string.Join(",", c.Targets)));
            // Without the flags the placeholders are refused with the flag to use.
            var e = Assert.Throws<UserInputException>(() => TrainConfig.FromValues(TrainConfig.ReadYaml(file), file));
            Assert.Contains("--model", FinQLoRA.Cli.FlagNames.Render(e));
        }
    }

    [Theory]
    [InlineData("llama-3.1-8b-4bit-r4-classification.yaml", 4, 4, 16, 1, 4)]
    [InlineData("llama-3.1-8b-8bit-r8-classification.yaml", 8, 8, 16, 1, 4)]
    [InlineData("llama-3.1-70b-4bit-r4-classification.yaml", 4, 4, 4, 4, 4)]
    [InlineData("llama-3.1-8b-4bit-r4-xbrl.yaml", 4, 4, 2, 2, 1)]
    [InlineData("llama-3.1-8b-8bit-r8-xbrl.yaml", 8, 8, 2, 2, 1)]
    public void PresetsCarryThePapersSettings(string name, int bits, int rank, int batch, int accum, int epochs)
    {
        var c = Load(Path.Combine(Shared.RepoRoot, "configs", name));
        Assert.Equal((bits, rank, batch, accum, epochs), (c.Bits.Value, c.Rank, c.BatchSize, c.GradAccum, c.Epochs));
    }

    private string Write(string yaml)
    {
        string path = Path.Combine(_dir, $"{Guid.NewGuid():N}.yaml");
        File.WriteAllText(path, "model: m\ndata: d.jsonl\n" + yaml);
        return path;
    }

    [Fact]
    public void UnknownKeyIsNamedInTheError()
    {
        string file = Write("lora_rank: 4\n");
        var e = Assert.Throws<UserInputException>(() => TrainConfig.FromValues(TrainConfig.ReadYaml(file), file));
        Assert.Contains("unknown key 'lora_rank'", e.Message);
        Assert.Contains(file, e.Message);
        Assert.Contains("rank", e.Message); // lists the valid keys
    }

    [Theory]
    [InlineData("bits: 3\n", "bits = 3")]
    [InlineData("rank: four\n", "rank = 'four' is not an integer")]
    [InlineData("lr: -1e-4\n", "lr = ")]
    [InlineData("dropout: 1.5\n", "dropout = 1.5")]
    [InlineData("optimizer: lion\n", "optimizer = lion")]
    [InlineData("double_quant: maybe\n", "double_quant = 'maybe' is not true or false")]
    [InlineData("quant: int4\n", "quant = int4")]
    [InlineData("batch_size: 0\n", "batch_size = 0")]
    [InlineData("targets:\n  - q_proj\n", "key 'targets' must have a single value")]
    [InlineData("rank: [4\n", "not valid YAML")]
    public void BadValuesAreRejectedWithTheKey(string yaml, string expected)
    {
        string file = Write(yaml);
        var e = Assert.Throws<UserInputException>(() => TrainConfig.FromValues(TrainConfig.ReadYaml(file), file));
        Assert.Contains(expected, e.Message);
        Assert.Contains(file, e.Message);
    }
}
