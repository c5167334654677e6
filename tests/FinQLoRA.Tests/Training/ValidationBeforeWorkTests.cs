using FinQLoRA.Inference;
using FinQLoRA.Tests.Support;
using FinQLoRA.Training;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Training;

/// <summary>Values that used to pass validation and fail (or silently misbehave) later are refused up front.</summary>
public sealed class ValidationBeforeWorkTests
{
    private static Dictionary<string, string> Values(params (string, string)[] extra)
    {
        var v = new Dictionary<string, string> { ["model"] = "m", ["data"] = "d.jsonl" };
        foreach (var (k, x) in extra) v[k] = x;
        return v;
    }

    [Theory]
    [InlineData("max_grad_norm", "nan")]
    [InlineData("max_grad_norm", "-inf")]
    [InlineData("alpha", "nan")]
    [InlineData("dropout", "nan")]
    [InlineData("weight_decay", "inf")]
    [InlineData("max_steps", "0")]
    public void TrainValuesThatCannotWorkAreNamed(string key, string value)
    {
        var e = Assert.Throws<UserInputException>(() => TrainConfig.FromValues(Values((key, value)), "flags"));
        Assert.Contains($"{key} = ", e.Message);
    }

    [Theory]
    [InlineData(double.NaN, 1.0)]
    [InlineData(double.PositiveInfinity, 1.0)]
    [InlineData(0.7, double.NaN)]
    [InlineData(2.5, 1.0)] // above the engine's (OpenAI's) range
    public void SamplingValuesThatCannotWorkAreNamed(double temperature, double topP)
    {
        var e = Assert.Throws<UserInputException>(() => new GenerationOptions { Temperature = temperature, TopP = topP }.Validate());
        Assert.Contains(double.IsNaN(topP) ? "--top-p" : "--temperature", FinQLoRA.Cli.FlagNames.Render(e));
    }

    [Fact]
    public void LogitsWithNothingFiniteAreAnErrorNotTokenZero()
    {
        using var sampler = new TokenSampler(new GenerationOptions(), CPU);
        using var logits = full(2, 10, float.NaN);
        Assert.Contains("NaN/inf logits", Assert.Throws<UserInputException>(() => sampler.Next(logits)).Message);
        using var fine = zeros(2, 10);
        using var ids = sampler.Next(fine);
        Assert.Equal(2, ids.shape[0]);
    }

    [Fact]
    public void ARankLargerThanTheProjectionsIsRefusedBeforeTraining()
    {
        using var dir = new TempFolder();
        string data = TrainingRun.WriteData(dir.Path);
        string run = Path.Combine(dir.Path, "run");
        var r = CliProcess.RunSeparately(TimeSpan.FromMinutes(2), "train", "--model", SeededLlama.Folder, "--data", data,
            "--out", run, "--rank", "5000", "--max-steps", "1");
        CliProcess.AssertOneLineError(r, "rank = 5000");
        Assert.False(Directory.Exists(run), "a refused run created its folder");
    }

    /// <summary>generate runs the serving engine, whose temperatures are OpenAI's [0, 2]: one above is refused with
    /// the option's name and the range, before the model loads.</summary>
    [Theory]
    [InlineData("nan")]
    [InlineData("2.5")]
    public void ATemperatureOutsideZeroToTwoIsRefusedBeforeTheModelLoads(string temperature)
    {
        var r = CliProcess.RunSeparately(TimeSpan.FromMinutes(2), "generate", "--model", SeededLlama.Folder, "--prompt", "x", "--temperature", temperature);
        CliProcess.AssertOneLineError(r, "--temperature must be in [0, 2]");
    }
}
