using System.Text.Json.Nodes;
using FinQLoRA.Data.Chat;
using FinQLoRA.Data.Formats;
using FinQLoRA.Privacy;
using FinQLoRA.Training;

namespace FinQLoRA.Tests.Privacy;

/// <summary>The DP keys: parsed, checked together, refused with the key named before any work.</summary>
public sealed class DpConfigTests
{
    private static TrainConfig Config(params (string Key, string Value)[] values)
    {
        var v = new Dictionary<string, string> { ["model"] = "m", ["data"] = "d.jsonl" };
        foreach (var (k, x) in values) v[k] = x;
        return TrainConfig.FromValues(v, "flags");
    }

    private static string Refusal(params (string, string)[] values) =>
        FinQLoRA.Cli.FlagNames.Render(Assert.Throws<UserInputException>(() => Config(values)));

    [Fact]
    public void Dp_keys_parse()
    {
        var c = Config(("dp", "true"), ("dp_target_epsilon", "8"), ("dp_delta", "1e-5"), ("dp_unit", "field:customer_id"), ("dp_accountant", "rdp"), ("dp_sampling", "shuffle"));
        Assert.True(c.Dp);
        Assert.Equal(8, c.DpTargetEpsilon);
        Assert.Equal("customer_id", c.DpUnit.Field);
        Assert.Equal(FinQLoRA.Privacy.Accounting.AccountantKind.Rdp, c.DpAccountant);
        Assert.Equal("field:customer_id", c.ToJson()["dp_unit"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("dp_noise_multiplier", "1.1", "--dp")]                 // a DP setting without dp
    [InlineData("dp_unit", "field:cid", "--dp")]
    [InlineData("dp_unit", "customer", "dp_unit = customer is invalid")]
    [InlineData("dp_delta", "1", "dp_delta = 1 is invalid")]
    [InlineData("dp_max_grad_norm", "0", "dp_max_grad_norm = 0 is invalid")]
    public void Bad_dp_values_are_named(string key, string value, string expected) =>
        Assert.Contains(expected, Refusal((key, value)));

    [Fact]
    public void Dp_needs_exactly_one_of_noise_and_target()
    {
        Assert.Contains("--dp-noise-multiplier", Refusal(("dp", "true")));
        Assert.Contains("--dp-target-epsilon", Refusal(("dp", "true"), ("dp_noise_multiplier", "1"), ("dp_target_epsilon", "3")));
    }

    [Fact]
    public void Dp_refuses_zero_one_adam() =>
        Assert.Contains("optimizer = zero-one-adam", Refusal(("dp", "true"), ("dp_noise_multiplier", "1"), ("optimizer", "zero-one-adam")));

    [Fact]
    public void A_record_without_its_unit_field_is_named_with_its_line()
    {
        var dir = Directory.CreateTempSubdirectory("finqlora-dp-unit-");
        try
        {
            string file = Path.Combine(dir.FullName, "d.jsonl");
            File.WriteAllLines(file, ["{\"context\":\"a\",\"target\":\"b\",\"customer\":\"c1\"}", "{\"context\":\"a\",\"target\":\"b\",\"customer\":17}", "{\"context\":\"a\",\"target\":\"b\"}"]);
            var e = Assert.Throws<UserInputException>(() => TrainingData.Read(file, null, () => ChatTemplateKind.None, "customer"));
            Assert.Contains($"{file}:3", e.Message);
            Assert.Contains("'customer'", e.Message);
            File.WriteAllLines(file, File.ReadLines(file).Take(2).ToArray());
            Assert.Equal(["c1", "17"], TrainingData.Read(file, null, () => ChatTemplateKind.None, "customer").Records.Select(r => r.Unit));
        }
        finally { dir.Delete(recursive: true); } // the temp folder this test made
    }

    [Fact]
    public void Resume_refuses_other_privacy_settings_naming_the_key()
    {
        var recorded = new JsonObject { ["noise_multiplier"] = 1.1, ["max_grad_norm"] = 1.0 };
        PrivacyPlan.CheckSame(recorded, (JsonObject)recorded.DeepClone(), "ckpt");
        var changed = new JsonObject { ["noise_multiplier"] = 1.1, ["max_grad_norm"] = 0.5 };
        Assert.Contains("max_grad_norm = 1", Assert.Throws<UserInputException>(() => PrivacyPlan.CheckSame(recorded, changed, "ckpt")).Message);
        Assert.Contains("without dp", Assert.Throws<UserInputException>(() => PrivacyPlan.CheckSame(null, changed, "ckpt")).Message);
        Assert.Contains("with dp", Assert.Throws<UserInputException>(() => PrivacyPlan.CheckSame(recorded, null, "ckpt")).Message);
    }
}
