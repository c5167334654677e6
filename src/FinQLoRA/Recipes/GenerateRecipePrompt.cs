namespace FinQLoRA.Recipes;

/// <summary>One prompt for <see cref="GenerateRecipe"/>. <see cref="Adapter"/> names the adapter to answer it with;
/// <see cref="NamesAdapter"/> tells a prompt that names none (the only adapter loaded, or the base when several are)
/// from one that asks for the base explicitly (<see cref="Adapter"/> null).</summary>
public sealed record GenerateRecipePrompt(string Text, string? Adapter = null, bool NamesAdapter = false);
