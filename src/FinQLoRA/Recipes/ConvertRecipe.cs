using FinQLoRA.Formats.Gguf;

namespace FinQLoRA.Recipes;

/// <summary><c>finqlora convert</c>: checks that the input is what the direction converts from, then converts
/// (<see cref="ModelConverter"/>, which places the output safely).</summary>
public static class ConvertRecipe
{
    /// <returns>the written file or folder</returns>
    public static string Run(ConvertOptions o)
    {
        switch (o.To)
        {
            case "gguf":
                if (!Directory.Exists(o.ModelPath))
                    throw UserInputException.About($"{new ConfigField("model")} {o.ModelPath}: {new ConfigField("to")} gguf converts a Hugging Face model folder");
                ModelConverter.HfToGguf(o.ModelPath, o.OutPath, o.DType, o.Overwrite);
                break;
            case "hf":
                if (!File.Exists(o.ModelPath))
                    throw UserInputException.About($"{new ConfigField("model")} {o.ModelPath}: {new ConfigField("to")} hf converts a .gguf file");
                ModelConverter.GgufToHf(o.ModelPath, o.OutPath, o.DType, o.Overwrite);
                break;
            default:
                throw UserInputException.About($"{new ConfigField("to")} '{o.To}' is not one of hf, gguf");
        }
        return o.OutPath;
    }
}
