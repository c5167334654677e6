using FinQLoRA.Loading;
using System.ComponentModel;
using System.Text.Json.Nodes;
using FinQLoRA.Inference;
using Spectre.Console;
using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

public sealed class TokenizeSettings : CommandSettings
{
    [CommandOption("--tokenizer <PATH>")]
    [Description("a folder with tokenizer.json, a tokenizer.json file, or a .gguf file")]
    public string Tokenizer { get; set; } = "";

    [CommandOption("--text <TEXT>")]
    public string? Text { get; set; }

    [CommandOption("--file <FILE>")]
    [Description("a text file, or a .jsonl file whose lines' 'text' (or 'context') fields are encoded one by one")]
    public string? File { get; set; }

    [CommandOption("--add-bos")]
    public bool AddBos { get; set; }

    [CommandOption("--json")]
    public bool Json { get; set; }

    public override ValidationResult Validate() =>
        string.IsNullOrEmpty(Tokenizer) ? ValidationResult.Error("--tokenizer is required")
        : (Text == null) == (File == null) ? ValidationResult.Error("give exactly one of --text or --file")
        : ValidationResult.Success();
}

public sealed class TokenizeCommand : Command<TokenizeSettings>
{
    public override int Execute(CommandContext context, TokenizeSettings s, CancellationToken cancellationToken)
    {
        var tokenizer = ModelLoading.LoadTokenizer(s.Tokenizer);
        IEnumerable<string> texts = s.Text != null ? [s.Text]
            : s.File!.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase) ? JsonlTexts(s.File)
            : System.IO.File.Exists(s.File) ? [System.IO.File.ReadAllText(s.File)]
            : throw new UserInputException($"{s.File}: file not found");
        foreach (string text in texts)
        {
            int[] ids = tokenizer.Encode(text, s.AddBos);
            if (s.Json) Console.WriteLine(new JsonObject { ["ids"] = new JsonArray(ids.Select(i => (JsonNode)i).ToArray()) }.ToJsonString());
            else AnsiConsole.WriteLine($"{ids.Length} tokens: {string.Join(' ', ids)}");
        }
        return 0;
    }

    private static IEnumerable<string> JsonlTexts(string path)
    {
        foreach (var (lineNo, line) in FinQLoRA.Data.Jsonl.JsonlLines.Read(path))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonNode? node;
            try { node = JsonNode.Parse(line); }
            catch (System.Text.Json.JsonException e) { throw new UserInputException($"{path}:{lineNo}: not valid JSON ({e.Message})"); }
            yield return (node?["text"] ?? node?["context"])?.GetValue<string>()
                ?? throw new UserInputException($"{path}:{lineNo}: no 'text' or 'context' field");
        }
    }
}
