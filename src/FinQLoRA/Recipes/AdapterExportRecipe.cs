using FinQLoRA.Adapters;

namespace FinQLoRA.Recipes;

/// <summary><c>finqlora export-adapter</c>: a PEFT adapter as a llama.cpp GGUF LoRA file (<see cref="GgufAdapterExporter"/>).</summary>
public static class AdapterExportRecipe
{
    /// <returns>the written file</returns>
    public static string Run(AdapterExportOptions o)
    {
        if (o.To != "gguf") throw UserInputException.About($"{new ConfigField("to")} '{o.To}' is not a target; export-adapter writes gguf");
        GgufAdapterExporter.Export(o.AdapterDir, o.OutPath, o.BasePath, o.Overwrite);
        return o.OutPath;
    }
}
