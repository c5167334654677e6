using Spectre.Console.Cli;

namespace FinQLoRA.Cli.Commands;

/// <summary>Every `finqlora` command, in one place. Each area adds its commands here.</summary>
internal static class CommandRegistry
{
    public static void Register(IConfigurator config)
    {
        config.AddCommand<DemoCommand>("demo").WithDescription("Run the whole QLoRA job on an embedded default (no download): base eval, 4-bit quantization, rank-4 training, eval.");
        config.AddCommand<TrainCommand>("train").WithDescription("Fine-tune LoRA adapters on a (quantized) base model from context/target JSONL.");
        config.AddCommand<EvalCommand>("eval").WithDescription("Evaluate a model (and adapter) on financial tasks: batched greedy generation, then scoring.");
        config.AddCommand<GenerateCommand>("generate").WithDescription("Generate text from prompts (greedy or sampled), batched with a KV cache.");
        config.AddCommand<ServeCommand>("serve").WithDescription("Serve the base and its adapters over an OpenAI-compatible HTTP API with continuous batching.");
        config.AddCommand<TokenizeCommand>("tokenize").WithDescription("Encode text with a model's tokenizer and print the ids.");
        config.AddCommand<VersionCommand>("version").WithDescription("Print versions of finqlora, TorchSharp and libtorch.");
        config.AddCommand<ConvertCommand>("convert").WithDescription("Convert a model (Llama, Mistral, Qwen2/3, Gemma 2/3, Phi-3) between a Hugging Face folder and GGUF (f32, f16, bf16, q8_0).");
        config.AddCommand<ExportAdapterCommand>("export-adapter").WithDescription("Export a PEFT LoRA adapter as a llama.cpp LoRA GGUF.");
        config.AddCommand<MergeCommand>("merge").WithDescription("Merge a LoRA/DoRA adapter into its base: a 16-bit HF folder laid out like the base, or GGUF.");
        config.AddCommand<LaunchCommand>("launch").WithDescription("Run a finqlora command on N ranks under mpirun: finqlora launch -n 2 -- <command> <args...>.");
        config.AddBranch("data", data =>
        {
            data.SetDescription("Data sets: fetch from the Hugging Face Hub, build task data, inspect.");
            data.AddCommand<DataFetchCommand>("fetch").WithDescription("Download a dataset repo from the Hugging Face Hub (resumable, verified, cached); --to-jsonl converts Parquet.");
            data.AddCommand<DataBuildCommand>("build").WithDescription("Build a task's context/target JSONL from its source files.");
            data.AddCommand<DataStatsCommand>("stats").WithDescription("Counts, label distribution and length percentiles of a JSONL file.");
        });
        config.AddBranch("model", model =>
        {
            model.SetDescription("Models: fetch from the Hugging Face Hub.");
            model.AddCommand<ModelFetchCommand>("fetch").WithDescription("Download a model repo from the Hugging Face Hub (config, tokenizer, safetensors by default).");
        });
        config.AddBranch("adapters", adapters =>
        {
            adapters.SetDescription("PEFT adapters: combine several sites' adapters of one base.");
            adapters.AddCommand<AdaptersAverageCommand>("average").WithDescription("Weighted average of compatible adapters (same base, targets, r, alpha; exact for FFA-LoRA's shared frozen A) into a new PEFT adapter with lineage.");
        });
        config.AddBranch("serve-keys", keys =>
        {
            keys.SetDescription("API keys of 'finqlora serve --keys': add one (printed once, stored as its SHA-256), list them.");
            keys.AddCommand<ServeKeysAddCommand>("add").WithDescription("Make a random API key, print it once and write its SHA-256, models, limits and rights into the keys file.");
            keys.AddCommand<ServeKeysListCommand>("list").WithDescription("List the keys of a keys file: ids, models, limits, adapter rights (never hashes).");
        });
        config.AddCommand<ScoreCommand>("score").WithDescription("Score a predictions JSONL with a task's metric.");
        config.AddCommand<ReportCommand>("report").WithDescription("Join run results into Markdown tables and an accuracy chart.");
        config.AddCommand<QuantizeCommand>("quantize").WithDescription("Quantize a Hugging Face Llama folder to bitsandbytes 4-bit (NF4/FP4) or 8-bit (LLM.int8) safetensors, tensor by tensor.");
        config.AddCommand<VerifyCommand>("verify").WithDescription("Check a training run or adapter folder against its lineage record (sha256 of the adapter's files and of the inputs still present).");
        config.AddCommand<PrivacyCommand>("privacy").WithDescription("Privacy spent by DP-SGD: ε for a sample rate, noise multiplier and steps, or the noise multiplier for a target ε.");
        config.AddCommand<MemoryCommand>("memory").WithDescription("Estimate weight, inference and training memory of a model (a folder or a preset) at 16, 8 or 4 bits.");
        // Hidden from the main help: tools for checking one backend against another (scripts/gpu), not for users' jobs.
        config.AddBranch("debug", debug =>
        {
            debug.HideBranch();
            debug.SetDescription("Checks of one device against another: dump logits, dequantized weights or adapter gradients as safetensors.");
            debug.AddCommand<DebugDumpLogitsCommand>("dump-logits").WithDescription("Write the logits of every prompt position (fp32, prompt length × vocabulary) and the prompt's ids as safetensors.");
            debug.AddCommand<DebugDumpDequantCommand>("dump-dequant").WithDescription("Write every quantized weight dequantized on --device, fp32 under its Hugging Face name, as safetensors.");
            debug.AddCommand<DebugDumpGradsCommand>("dump-grads").WithDescription("Write one training step's adapter gradients on the first --batch-size examples, under PEFT keys, as safetensors.");
        });
    }
}
