using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http;

namespace FinQLoRA.Server;

/// <summary>vLLM's runtime adapter endpoints: <c>POST /v1/load_lora_adapter {lora_name, lora_path}</c> and
/// <c>POST /v1/unload_lora_adapter {lora_name}</c>, enabled by --adapter-root and confined to it.</summary>
internal static partial class AdapterEndpoints
{
    public static async Task LoadAsync(HttpContext context, ServerState state)
    {
        var root = Enabled(state);
        var body = await RequestBody.ReadAsync(context, state.Options.MaxBodyBytes).ConfigureAwait(false);
        string name = Name(body, state);
        string path = root.Resolve(body.RequiredString("lora_path"));
        try
        {
            await state.Engine.LoadAdapterAsync(name, path).ConfigureAwait(false);
        }
        catch (UserInputException e)
        {
            // The adapter's own faults (shape, keys, config): the folder is named in the message, the model untouched.
            throw new ApiException(400, e.Message.Replace(path, body.RequiredString("lora_path"), StringComparison.Ordinal), "lora_path", "invalid_adapter");
        }
        context.Response.ContentType = "text/plain";
        await context.Response.WriteAsync($"Success: LoRA adapter '{name}' added successfully.", context.RequestAborted).ConfigureAwait(false);
    }

    public static async Task UnloadAsync(HttpContext context, ServerState state)
    {
        Enabled(state);
        var body = await RequestBody.ReadAsync(context, state.Options.MaxBodyBytes).ConfigureAwait(false);
        string name = body.RequiredString("lora_name");
        await state.Engine.UnloadAdapterAsync(name).ConfigureAwait(false);
        context.Response.ContentType = "text/plain";
        await context.Response.WriteAsync($"Success: LoRA adapter '{name}' removed successfully.", context.RequestAborted).ConfigureAwait(false);
    }

    private static AdapterRootPolicy Enabled(ServerState state) => state.AdapterRoot
        ?? throw new ApiException(400, "runtime adapter loading is off; start the server with --adapter-root DIR to allow it", null, "runtime_adapters_disabled");

    private static string Name(RequestBody body, ServerState state)
    {
        string name = body.RequiredString("lora_name");
        if (!NamePattern().IsMatch(name)) throw new ApiException(400, $"lora_name '{name}' must be 1-64 letters, digits, '_' or '-'", "lora_name");
        if (name == state.Models.BaseName || name == "base") throw new ApiException(400, $"lora_name '{name}' is the base model's name", "lora_name");
        return name;
    }

    [GeneratedRegex("^[A-Za-z0-9_-]{1,64}$")]
    private static partial Regex NamePattern();
}
