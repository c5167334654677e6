using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Adapters;

/// <summary>A "test" that regenerates a committed fixture: it runs only with FINQLORA_WRITE_PEFT_FIXTURES=1 (and the shared model).</summary>
public sealed class PeftFixtureWriterFactAttribute : FactAttribute
{
    public PeftFixtureWriterFactAttribute()
    {
        if (Environment.GetEnvironmentVariable("FINQLORA_WRITE_PEFT_FIXTURES") != "1")
            Skip = "writes tests/fixtures/peft/finqlora_made_adapter; set FINQLORA_WRITE_PEFT_FIXTURES=1 to regenerate it";
        else if (!Shared.Available)
            Skip = Shared.SkipReason;
    }
}
