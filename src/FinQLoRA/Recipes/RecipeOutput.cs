namespace FinQLoRA.Recipes;

/// <summary>Where a recipe that writes a model, adapter or file puts it, and whether it may replace what is there;
/// the options of convert, quantize, merge and export-adapter derive from it.</summary>
public abstract record RecipeOutput
{
    /// <summary>The output file or folder.</summary>
    public required string OutPath { get; init; }
    /// <summary>Replace an existing output that FinQLoRA wrote (an input or a foreign folder never is).</summary>
    public bool Overwrite { get; init; }
}
