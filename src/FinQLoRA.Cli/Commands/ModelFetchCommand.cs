using System.ComponentModel;
using FinQLoRA.Cli.Rendering;
using FinQLoRA.Hub;
using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

/// <summary><c>finqlora model fetch REPO --out DIR [--revision main] [--include GLOB]...</c></summary>
internal sealed class ModelFetchCommand : AsyncCommand<ModelFetchCommand.Settings>
{
    /// <summary>What a Hugging Face checkpoint needs: config and tokenizer files and the safetensors shards (not the original .pth).</summary>
    public static readonly IReadOnlyList<string> DefaultInclude = ["*.json", "*.safetensors", "tokenizer*"];

    public sealed class Settings : HubFetchSettings
    {
        [CommandArgument(0, "<REPO>")]
        [Description("Model repo on the Hub, e.g. meta-llama/Llama-3.1-8B-Instruct (gated: set HF_TOKEN and accept the licence).")]
        public string Repo { get; init; } = "";
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        HubRepo repo = HubRepo.Create(HubRepoType.Model, settings.Repo, settings.Revision);
        IReadOnlyList<string> include = settings.Include.Length > 0 ? settings.Include : DefaultInclude;
        await HubFetchConsole.FetchAsync(repo, include, settings.Out!, cancellationToken);
        return 0;
    }
}
