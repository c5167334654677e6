using System.Text.RegularExpressions;
using FinQLoRA.Server.Common;
using FinQLoRA.Server.Models;
using FinQLoRA.Server.Tenancy;
using Microsoft.AspNetCore.Http;

namespace FinQLoRA.Server.Adapters;

/// <summary>The logic of vLLM's runtime adapter endpoints: names checked, folders confined to the adapter root
/// (enabled by --adapter-root), the engine loads or unloads; the answer is vLLM's success line.</summary>
internal static partial class AdapterServing
{
    public static async Task<string> LoadAsync(HttpContext context, ServerState state, LoadLoraAdapterRequest request)
    {
        var root = Enabled(state);
        string name = Name(request.LoraName, state);
        // whether the name is free or taken, a key may load only under a name it may use: the answer is the same
        if (!Tenant.Of(context).Models.Allows(name))
            throw new ApiException(403, $"lora_name '{name}' is not among the models API key '{Tenant.Of(context).Id}' may use ({Tenant.Of(context).Models}); load it under a name that is", "lora_name", "permission_denied");
        string requested = RequestFields.Required(request.LoraPath, "lora_path");
        string path = root.Resolve(requested);
        try
        {
            var lineage = AdapterLineage.Read(path);
            string? sha256 = state.Fingerprints.Hash(path); // the file as it is when loaded, hashed before the name can serve
            await state.Engine.LoadAdapterAsync(name, path).ConfigureAwait(false);
            state.Models.SetLineage(name, lineage);
            state.Fingerprints.Loaded(name, sha256);
        }
        catch (UserInputException e)
        {
            // The adapter's own faults (shape, keys, config): the folder is named in the message, the model untouched.
            throw new ApiException(400, e.Message.Replace(path, requested, StringComparison.Ordinal), "lora_path", "invalid_adapter");
        }
        return $"Success: LoRA adapter '{name}' added successfully.";
    }

    public static async Task<string> UnloadAsync(HttpContext context, ServerState state, UnloadLoraAdapterRequest request)
    {
        string name = RequestFields.Required(request.LoraName, "lora_name");
        Tenant.Authorize(context, name, "lora_name"); // another tenant's adapter is as absent as an unknown one
        await state.Engine.UnloadAdapterAsync(name).ConfigureAwait(false);
        state.Models.SetLineage(name, null);
        state.Fingerprints.Unloaded(name);
        return $"Success: LoRA adapter '{name}' removed successfully.";
    }

    /// <summary>The policy, or 400 when runtime loading is off; checked before the body is read.</summary>
    public static AdapterRootPolicy Enabled(ServerState state) => state.AdapterRoot
        ?? throw new ApiException(400, "runtime adapter loading is off; start the server with --adapter-root DIR to allow it", null, "runtime_adapters_disabled");

    private static string Name(string? value, ServerState state)
    {
        string name = RequestFields.Required(value, "lora_name");
        if (!NamePattern().IsMatch(name)) throw new ApiException(400, $"lora_name '{name}' must be 1-64 letters, digits, '_' or '-'", "lora_name");
        if (name == state.Models.BaseName || name == "base") throw new ApiException(400, $"lora_name '{name}' is the base model's name", "lora_name");
        return name;
    }

    [GeneratedRegex("^[A-Za-z0-9_-]{1,64}$")]
    private static partial Regex NamePattern();
}
