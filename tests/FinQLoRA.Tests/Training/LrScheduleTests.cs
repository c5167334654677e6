using FinQLoRA.Training.Schedules;

namespace FinQLoRA.Tests.Training;

public sealed class LrScheduleTests
{
    // Hand values for W = 10 warm-up steps, T = 110 total steps, base lr 1e-4 (so T − W = 100 decay steps).

    [Theory]
    [InlineData(0, 0.0)]            // warm-up starts at 0: 0/10
    [InlineData(5, 0.5)]            // 5/10
    [InlineData(10, 1.0)]           // end of warm-up: progress 0, ½(1 + cos 0) = 1
    [InlineData(35, 0.8535533905932737)] // progress 0.25: ½(1 + cos(π/4)) = ½(1 + 0.70710678…)
    [InlineData(60, 0.5)]           // progress 0.5: ½(1 + cos(π/2)) = ½
    [InlineData(110, 0.0)]          // progress 1: ½(1 + cos π) = 0
    public void Cosine_matches_hf_formula(long step, double expected)
    {
        var schedule = new LrSchedule(LrScheduleKind.Cosine, 1e-4, warmupSteps: 10, totalSteps: 110);
        Assert.Equal(expected, schedule.Multiplier(step), 12);
        Assert.Equal(1e-4 * expected, schedule.LearningRateAt(step), 15);
    }

    [Fact]
    public void Cosine_past_the_end_rises_again_as_in_hf()
    {
        // HF does not clamp progress at 1: step 130 has progress 1.2, ½(1 + cos 1.2π) = ½(1 − 0.809017) = 0.0954915.
        Assert.Equal(0.09549150281252622, new LrSchedule(LrScheduleKind.Cosine, 1e-4, 10, 110).Multiplier(130), 12);
    }

    [Theory]
    [InlineData(0, 0.0)]
    [InlineData(3, 0.3)]
    [InlineData(10, 1.0)]    // (110 − 10)/100
    [InlineData(60, 0.5)]    // (110 − 60)/100
    [InlineData(109, 0.01)]  // (110 − 109)/100
    [InlineData(110, 0.0)]
    [InlineData(150, 0.0)]   // max(0, −40/100)
    public void Linear_matches_hf_formula(long step, double expected) =>
        Assert.Equal(expected, new LrSchedule(LrScheduleKind.Linear, 1e-4, 10, 110).Multiplier(step), 12);

    [Theory]
    [InlineData(0, 0.0)]
    [InlineData(7, 0.7)]
    [InlineData(10, 1.0)]
    [InlineData(1000, 1.0)]
    public void Constant_matches_hf_formula(long step, double expected) =>
        Assert.Equal(expected, new LrSchedule(LrScheduleKind.Constant, 1e-4, 10, 110).Multiplier(step), 12);

    [Fact]
    public void Cosine_with_min_ratio_decays_to_the_floor()
    {
        var schedule = new LrSchedule(LrScheduleKind.Cosine, 2e-4, 10, 110, minLrRatio: 0.1);
        Assert.Equal(1.0, schedule.Multiplier(10), 12);          // 1·0.9 + 0.1
        Assert.Equal(0.55, schedule.Multiplier(60), 12);         // ½·0.9 + 0.1
        Assert.Equal(0.1, schedule.Multiplier(110), 12);         // 0·0.9 + 0.1
        Assert.Equal(2e-5, schedule.LearningRateAt(110), 15);
    }

    [Fact]
    public void Without_warmup_the_first_step_uses_the_full_rate()
    {
        Assert.Equal(1.0, new LrSchedule(LrScheduleKind.Cosine, 1e-4, 0, 100).Multiplier(0), 12);
        // T − W = 0 is guarded by max(1, ·) as in HF: all warm-up, then λ(T) = max(0, 0/1) = 0 for linear.
        Assert.Equal(0.0, new LrSchedule(LrScheduleKind.Linear, 1e-4, 5, 5).Multiplier(5), 12);
    }

    [Fact]
    public void Advance_and_state_round_trip()
    {
        var schedule = new LrSchedule(LrScheduleKind.Linear, 1e-4, 10, 110);
        Assert.Equal(0.0, schedule.CurrentLearningRate);
        for (int i = 0; i < 15; i++) schedule.Advance();
        Assert.Equal(15, schedule.Step);
        double expected = schedule.CurrentLearningRate;
        Assert.Equal(1e-4 * 0.95, expected, 15); // (110 − 15)/100

        string json = System.Text.Json.JsonSerializer.Serialize(schedule.State());
        var resumed = new LrSchedule(LrScheduleKind.Linear, 1e-4, 10, 110);
        resumed.LoadState(System.Text.Json.JsonSerializer.Deserialize<LrScheduleState>(json)!);
        Assert.Equal(expected, resumed.CurrentLearningRate);
    }

    [Theory]
    [InlineData("cosine", LrScheduleKind.Cosine)]
    [InlineData("Linear", LrScheduleKind.Linear)]
    [InlineData(" constant ", LrScheduleKind.Constant)]
    public void Parse_accepts_the_three_names(string name, LrScheduleKind expected) =>
        Assert.Equal(expected, LrSchedule.Parse(name));

    [Theory]
    [InlineData("cosine_with_restarts")]
    [InlineData("")]
    [InlineData("polynomial")]
    public void Parse_rejects_anything_else_with_the_choices(string name)
    {
        var e = Assert.Throws<UserInputException>(() => LrSchedule.Parse(name));
        Assert.Contains($"'{name}'", e.Message);
        Assert.Contains("cosine, linear, constant", e.Message);
    }

    [Fact]
    public void Bad_settings_are_user_errors()
    {
        Assert.Throws<UserInputException>(() => new LrSchedule(LrScheduleKind.Cosine, 1e-4, 20, 10));
        Assert.Throws<UserInputException>(() => new LrSchedule(LrScheduleKind.Cosine, 1e-4, 0, 0));
        Assert.Throws<UserInputException>(() => new LrSchedule(LrScheduleKind.Linear, 1e-4, 0, 10, minLrRatio: 0.1));
        Assert.Throws<UserInputException>(() => new LrSchedule(LrScheduleKind.Cosine, double.NaN, 0, 10));
    }
}
