using FinQLoRA.Adapters;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Adapters;

/// <summary>
/// Cross-checks with Python PEFT through fixtures made by tests/fixtures/peft/peft_crosscheck.py:
/// an adapter made and run by PEFT must give the same logits here, and the adapter we ship as a fixture must still give
/// the logits recorded for it (the script checks PEFT gets those too).
/// </summary>
public sealed class PeftInteropTests
{
    /// <summary>HF transformers and our forward agree to about 1e-5 on stories260K; llama.cpp's check uses 1e-4 too.</summary>
    private const double Tolerance = 1e-4;

    private static void AssertPeftLogits(string folder, string logitsFile)
    {
        string dir = PeftFixtures.Path(folder);
        var (ids, expected) = PeftFixtures.ReadLogits(System.IO.Path.Combine(dir, logitsFile));
        using var model = LoraTestKit.LoadStories();
        PeftAdapterFiles.Load(dir, model);
        model.eval();
        using var noGrad = no_grad();
        using var input = tensor(ids.SelectMany(p => p).ToArray(), [ids.Length, ids[0].Length]);
        using var logits = model.Forward(input);
        double diff = TensorAssert.MaxDiff(logits, expected);
        Assert.True(diff < Tolerance, $"{folder}: max |ours − PEFT| = {diff}");
    }

    [PeftFixtureFact("peft_made_adapter")]
    public void PeftMadeLoraAdapterGivesPeftsLogits() => AssertPeftLogits("peft_made_adapter", "peft_logits.json");

    [PeftFixtureFact("peft_made_dora_adapter")]
    public void PeftMadeDoraAdapterGivesPeftsLogits() => AssertPeftLogits("peft_made_dora_adapter", "peft_logits.json");

    [PeftFixtureFact("finqlora_made_adapter")]
    public void OurFixtureAdapterStillGivesItsRecordedLogits() => AssertPeftLogits("finqlora_made_adapter", "finqlora_logits.json");

    /// <summary>Regenerates finqlora_made_adapter (run with FINQLORA_WRITE_PEFT_FIXTURES=1), for the script's "logits --expect" check.</summary>
    [PeftFixtureWriterFact]
    public void WriteOurFixtureAdapterWhenAsked()
    {
        var config = new LoraConfig { Rank = 4, Alpha = 32, Dropout = 0.1, TargetModules = ["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"], BaseModelNameOrPath = "stories260K-hf" };
        using var model = LoraTestKit.LoadStories();
        LoraInjector.Apply(model, config, seed: 1234);
        LoraTestKit.Randomize(model, "default", seed: 4321);
        string dir = PeftFixtures.Path("finqlora_made_adapter");
        PeftAdapterFiles.Save(dir, model, config);
        using var logits = LoraTestKit.Logits(model);
        PeftFixtures.WriteLogits(System.IO.Path.Combine(dir, "finqlora_logits.json"), LoraTestKit.PromptIds, logits);
    }
}
