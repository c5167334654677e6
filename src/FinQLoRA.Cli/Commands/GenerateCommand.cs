using FinQLoRA.Loading;
using System.ComponentModel;
using System.Text.Json;
using System.Text.Json.Nodes;
using FinQLoRA.Adapters;
using FinQLoRA.Data.Chat;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Distributed;
using FinQLoRA.Inference;
using FinQLoRA.Inference.Pipeline;
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
    [Description("with --pipeline-stages: cut each batch into M micro-batches that flow through the stages concurrently (M >= N keeps every stage busy)")]
    [DefaultValue(1)]
    public int MicroBatches { get; set; } = 1;

    [CommandOption("--adapter <DIR>")]
    [Description("PEFT adapter folder, or name=DIR (repeatable); a --prompts line picks one with \"adapter\": \"name\" (null or \"base\" = no adapter; a line without the key uses the only adapter, or the base when several are loaded)")]
    public string[] Adapter { get; set; } = [];

    [CommandOption("--chat")]
    [Description("wrap each prompt as a user message in the model's chat template (Llama 3 or ChatML, detected from its tokenizer)")]
    public bool Chat { get; set; }

    [CommandOption("--json")]
    [Description("print one JSON object per prompt: prompt_ids, output_ids, text, finish_reason")]
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
        var prompts = lines.Select(l => l.Prompt).ToList();
        var options = new GenerationOptions
        {
            MaxNewTokens = s.MaxNewTokens,
            Temperature = s.Greedy ? 0 : s.Temperature,
            TopP = s.TopP,
            TopK = s.TopK,
            Seed = s.Seed,
            StopStrings = s.Stop,
        };
        options.Validate(); // before the model loads

        var adapters = AdapterSpec.Parse(s.Adapter);
        using var session = GenerationSession.Open(new GenerationSetup(s.Model, s.QuantizedLoadOptions())
        {
            Adapters = adapters.Select(a => (a.Name, a.Dir)).ToList(), PipelineStages = s.PipelineStages, MicroBatches = s.MicroBatches, Command = "generate",
        });
        var chat = s.Chat ? ChatFormatOf(s.Model, session.Tokenizer) : null; // on every rank: a refusal stops them all
        var ids = session.IsMain ? Encode(chat, session.Tokenizer, prompts) : [];
        if (session.SingleProcess is not { } generator)
        {
            // one stage per rank: every rank takes part, the main rank alone prints
            var staged = session.Generator.GenerateIds(ids, options, s.BatchSize);
            if (session.IsMain) Print(s, session.Tokenizer, prompts, staged);
            return 0;
        }
        // A line without "adapter" uses the only adapter given; with several, it must say which (or gets the base).
        string? fallback = adapters.Count == 1 ? adapters[0].Name : null;
        var requests = lines.Select((l, i) => new GenerationRequest(ids[i], l.NamesAdapter ? l.Adapter : fallback)).ToList();
        var results = MultiAdapterGenerator.Generate(generator, requests, options, s.BatchSize);
        Print(s, session.Tokenizer, prompts, results, adapters.Count > 0 ? requests.Select(r => r.Adapter).ToList() : null);
        return 0;
    }

    private static List<int[]> Encode(ChatFormat? chat, ITextTokenizer tokenizer, IReadOnlyList<string> prompts) =>
        prompts.Select(p => chat is not null
            ? tokenizer.Encode(chat.Render([new("user", p)]), addBos: false)
            : tokenizer.Encode(p, addBos: tokenizer.AddsBosByDefault)).ToList();

    /// <summary>--chat: the model's detected chat format (the same one serve uses); a model without one is refused
    /// rather than given a template it was not trained on.</summary>
    private static ChatFormat ChatFormatOf(string model, ITextTokenizer tokenizer)
    {
        var path = ModelPath.Classify(model);
        return ChatFormat.Detect(tokenizer, path.IsGguf ? null : Path.Combine(path.Checkpoint, ChatTemplateDetector.ConfigFileName))
            ?? throw new UserInputException($"--chat: {model} has no chat template we render (neither a ChatML chat_template in tokenizer_config.json nor Llama 3's header tokens); drop --chat and write the prompt in the model's own format");
    }

    private static void Print(GenerateSettings s, ITextTokenizer tokenizer, IReadOnlyList<string> prompts, IReadOnlyList<GenerationResult> results, IReadOnlyList<string?>? adapters = null)
    {
        for (int i = 0; i < results.Count; i++)
        {
            var r = results[i];
            if (s.Json)
            {
                var o = new JsonObject
                {
                    ["prompt"] = prompts[i],
                    ["adapter"] = adapters?[i],
                    ["prompt_ids"] = new JsonArray(r.PromptIds.Select(x => (JsonNode)x).ToArray()),
                    ["output_ids"] = new JsonArray(r.OutputIds.Select(x => (JsonNode)x).ToArray()),
                    ["text"] = r.Text,
                    ["finish_reason"] = r.FinishReason,
                };
                Console.WriteLine(o.ToJsonString(new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
            }
            else
            {
                // the prompt as typed, then what the model added to it (with the space a SentencePiece token carries)
                string added = s.Chat ? r.Text : ContinuationText.Of(tokenizer, r.PromptIds, r.OutputIds, r.Text);
                AnsiConsole.MarkupLine($"[grey]{Markup.Escape(prompts[i])}[/]{Markup.Escape(added)}");
            }
        }
    }
}
