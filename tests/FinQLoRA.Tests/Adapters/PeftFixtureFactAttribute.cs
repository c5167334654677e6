using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Adapters;

/// <summary>
/// A fact that needs a fixture folder under tests/fixtures/peft made by Python PEFT (peft_crosscheck.py, run on a machine
/// with torch, transformers and peft). Skipped with the command to make it when the folder is absent, CI included:
/// the fixture is an optional artefact, not part of a fresh clone's contract. Also needs the shared stories260K model.
/// </summary>
public sealed class PeftFixtureFactAttribute : FactAttribute
{
    public PeftFixtureFactAttribute(string folder)
    {
        string path = PeftFixtures.Path(folder);
        if (!Directory.Exists(path))
            Skip = $"PEFT fixture {path} is absent; make it with: python3 tests/fixtures/peft/peft_crosscheck.py make --model <stories260K-hf> --out {path}";
        else if (!Shared.Available && !Shared.IsCi)
            Skip = Shared.SkipReason;
    }
}
