using System.ComponentModel;
using System.Text.Json;
using System.Text.Json.Nodes;
using FinQLoRA.Inference;
using FinQLoRA.Recipes;
using Spectre.Console;
using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

public sealed class GenerateSettings : QuantizedModelSettings
{
    [CommandOption("--prompt <TEXT>")]
    [Description("one prompt")]
    public string? Prompt { get; set; }

    [CommandOption("--prompts <FILE>")]
    [Description("JSONL file; each line's 'prompt', 'context' or 'text' field is a prompt")]
    public string? PromptsFile { get; set; }

    [CommandOption("--max-new-tokens <N>")]
    [DefaultValue(64)]
    public int MaxNewTokens { get; set; } = 64;

    [CommandOption("--greedy")]
    [Description("argmax decoding (the default unless --temperature > 0)")]
    public bool Greedy { get; set; }

    [CommandOption("--temperature <T>")]
    [DefaultValue(0.0)]
    public double Temperature { get; set; }

    [CommandOption("--top-p <P>")]
    [DefaultValue(1.0)]
    public double TopP { get; set; } = 1.0;

    [CommandOption("--top-k <K>")]
    [DefaultValue(0)]
    public int TopK { get; set; }

    [CommandOption("--seed <S>")]
    [DefaultValue(42L)]
    public long Seed { get; set; } = 42;

    [CommandOption("--stop <TEXT>")]
    [Description("stop string (repeatable)")]
    public string[] Stop { get; set; } = [];

    [CommandOption("--batch-size <B>")]
    [DefaultValue(8)]
    public int BatchSize { get; set; } = 8;

    [CommandOption("--pipeline-stages <N>")]
    [Description("split the model's layers over N processes (run under mpirun -np N; N must equal the number of ranks)")]
    [DefaultValue(1)]
    public int PipelineStages { get; set; } = 1;

    [CommandOption("--micro-batches <M>")]
    [Description("with --pipeline-stages: cut each step's rows into M micro-batches that follow each other through the stages (M >= N keeps every stage busy)")]
    [DefaultValue(1)]
    public int MicroBatches { get; set; } = 1;

    [CommandOption("--adapter <DIR>")]
    [Description("PEFT adapter folder, or name=DIR (repeatable); a --prompts line picks one with \"adapter\": \"name\" (null or \"base\" = no adapter; a line without the key uses the only adapter, or the base when several are loaded)")]
    public string[] Adapter { get; set; } = [];

    [CommandOption("--chat")]
    [Description("wrap each prompt as a user message in the model's chat template (Llama 3 or ChatML, detected from its tokenizer)")]
    public bool Chat { get; set; }

    [CommandOption("--json")]
    [Description("print one JSON object per prompt: prompt_ids, output_ids, text, finish_reason (stop or length), stop_reason (the stop id or string, or null)")]
    public bool Json { get; set; }

    public override ValidationResult Validate()
    {
        if (Prompt == null && PromptsFile == null) return ValidationResult.Error("give --prompt TEXT or --prompts FILE.jsonl");
        if (Prompt != null && PromptsFile != null) return ValidationResult.Error("give either --prompt or --prompts, not both");
        return base.Validate();
    }
}

public sealed class GenerateCommand : Command<GenerateSettings>
{
    public override int Execute(CommandContext context, GenerateSettings s, CancellationToken cancellationToken)
    {
        var lines = s.Prompt != null ? [new PromptLine(s.Prompt, null, false)] : PromptFile.ReadLines(s.PromptsFile!);
        var result = GenerateRecipe.Run(new GenerateRecipeOptions
        {
            ModelPath = s.Model,
            Load = s.QuantizedLoadOptions(),
            Prompts = lines.Select(l => new GenerateRecipePrompt(l.Prompt, l.Adapter, l.NamesAdapter)).ToList(),
            Generation = new GenerationOptions
            {
                MaxNewTokens = s.MaxNewTokens,
                Temperature = s.Greedy ? 0 : s.Temperature,
                TopP = s.TopP,
                TopK = s.TopK,
                Seed = s.Seed,
                StopStrings = s.Stop,
            },
            Adapters = AdapterSpec.Parse(s.Adapter).Select(a => (a.Name, a.Dir)).ToList(),
            BatchSize = s.BatchSize,
            PipelineStages = s.PipelineStages,
            MicroBatches = s.MicroBatches,
            Chat = s.Chat,
        });
        if (result.IsMain) Print(s, lines, result);
        return 0;
    }

    private static void Print(GenerateSettings s, IReadOnlyList<PromptLine> lines, GenerateRecipeResult result)
    {
        for (int i = 0; i < result.Outputs.Count; i++)
        {
            var r = result.Outputs[i];
            if (s.Json)
            {
                var o = new JsonObject
                {
                    ["prompt"] = lines[i].Prompt,
                    ["adapter"] = result.Adapters?[i],
                    ["prompt_ids"] = new JsonArray(r.PromptIds.Select(x => (JsonNode)x).ToArray()),
                    ["output_ids"] = new JsonArray(r.OutputIds.Select(x => (JsonNode)x).ToArray()),
                    ["text"] = r.Text,
                    ["finish_reason"] = r.FinishReason.Value,
                    // vLLM's stop_reason: the stop id or stop string that ended the output, null at the length limit
                    ["stop_reason"] = r.FinishReason.StopToken is { } id ? JsonValue.Create(id) : JsonValue.Create(r.FinishReason.StopString),
                };
                Console.WriteLine(o.ToJsonString(new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
            }
            else
            {
                // the prompt as typed, then what the model added to it (the text reads after the prompt, spaces included)
                AnsiConsole.MarkupLine($"[grey]{Markup.Escape(lines[i].Prompt)}[/]{Markup.Escape(r.Text)}");
            }
        }
    }
}
