using FinQLoRA.Adapters;
using FinQLoRA.Data.Tokenization;
using FinQLoRA.Loading;
using FinQLoRA.Serving;
using FinQLoRA.Tests.Adapters;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Serving.Residency;

/// <summary>What the residency tests share: five PEFT adapter folders for the seeded Llama (different ranks and targets,
/// one DoRA, B random and nonzero so that each changes the output), written once, and engines that register them as
/// <c>finqlora serve</c> does (read on first use).</summary>
public sealed class ResidencyKit : IDisposable
{
    private readonly TempFolder _temp = new();

    public static readonly string[] Names = ["r0", "r1", "r2", "r3", "r4"];
    private static readonly (int Rank, string[] Targets, bool Dora)[] Shapes =
    [
        (4, ["q_proj", "v_proj"], false), (8, ["up_proj", "down_proj", "o_proj"], false), (2, ["k_proj", "gate_proj"], true),
        (16, ["q_proj", "k_proj", "v_proj", "o_proj"], false), (4, ["gate_proj", "up_proj"], false),
    ];

    public ResidencyKit()
    {
        Tokenizer = ModelLoading.LoadTokenizer(SeededLlama.Folder);
        for (int i = 0; i < Names.Length; i++)
        {
            using var model = SeededLlama.Load();
            var (rank, targets, dora) = Shapes[i];
            var config = new LoraConfig { Rank = rank, Alpha = 2 * rank, TargetModules = targets, UseDora = dora };
            LoraInjector.Apply(model, config, 10 + i);
            LoraTestKit.Randomize(model, "default", 20 + i, scale: 0.3);
            PeftAdapterFiles.Save(DirOf(Names[i]), model, config);
        }
    }

    public ITextTokenizer Tokenizer { get; }

    public string DirOf(string name) => _temp.PathOf(Path.Combine("adapters", name));

    /// <summary>An engine on a fresh seeded model with the five adapters registered (pinned: those named).</summary>
    public Served Engine(int maxLoras, int? maxCpuLoras = null, int maxBatch = 4, params string[] pinned)
    {
        var model = SeededLlama.Load();
        model.eval();
        var engine = new ServingEngine(model, Tokenizer, new EngineOptions { MaxBatch = maxBatch, MaxModelLen = 128, MaxLoras = maxLoras, MaxCpuLoras = maxCpuLoras });
        foreach (string name in Names) engine.LoadAdapterAsync(name, DirOf(name), pinned.Contains(name)).GetAwaiter().GetResult();
        return new Served(engine, model);
    }

    /// <summary>An engine and the model it serves, freed together.</summary>
    public sealed record Served(ServingEngine Engine, FinQLoRA.Models.DecoderModel Model) : IDisposable
    {
        public void Dispose()
        {
            Engine.Dispose();
            Model.Dispose();
        }
    }

    public EngineRequest Greedy(string? adapter, int prompt, int tokens = 8) =>
        new(Tokenizer.Encode(Prompts[prompt % Prompts.Length], addBos: true), adapter, new SamplingParams { MaxTokens = tokens });

    public static readonly string[] Prompts = ["Once upon a time", "The little dog", "Lily went to the park and", "Tom had a big", "One day"];

    public void Dispose() => _temp.Dispose();
}
