using System.Globalization;
using FinQLoRA.Models;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FinQLoRA.Adapters;

/// <summary>
/// Puts named LoRA adapters into a <see cref="DecoderModel"/> (PEFT's <c>get_peft_model</c> / <c>add_adapter</c>),
/// switches between them, and takes them out again. After <see cref="Apply(DecoderModel, LoraConfig, long, string)"/>
/// exactly the active adapter's A, B (and DoRA m) tensors require grad (B alone when A is frozen: FFA-LoRA); everything
/// else is frozen.
/// </summary>
public static class LoraInjector
{
    /// <summary>Adds adapter <paramref name="adapterName"/> with A seeded from <see cref="LoraConfig.InitSeed"/>.</summary>
    public static LoraInjectionSummary Apply(DecoderModel model, LoraConfig config, string adapterName = LoraLinear.DefaultAdapter) =>
        Apply(model, config, config.InitSeed, adapterName);

    /// <summary>
    /// Wraps every targeted projection of every layer (once; a second adapter reuses the wrapper), adds a fresh
    /// adapter initialised from <paramref name="seed"/> (layers in order, the family's projections in module order within
    /// a layer: q, k, v, o, gate, up, down; Phi-3's qkv, o, gate_up, down), makes it active and freezes everything else.
    /// The config's target names are resolved against the model's family here ("all-linear" → its projections; a name
    /// it lacks is refused naming its modules).
    /// </summary>
    public static LoraInjectionSummary Apply(DecoderModel model, LoraConfig config, long seed, string adapterName = LoraLinear.DefaultAdapter)
    {
        var targets = config.ResolvedTargets(model.Config.Family); // first: its messages name the family's modules
        config.Validate();
        if (AdapterNames(model).Contains(adapterName))
            throw new UserInputException($"the model already has an adapter named '{adapterName}'; choose another name or delete it first");
        using var generator = new Generator((ulong)seed);
        int wrapped = 0;
        for (int i = 0; i < model.Layers.Count; i++)
        {
            foreach (var projection in model.Config.Family.Projections.Where(targets.Contains))
            {
                var lora = Wrap(Owner(model.Layers[i], projection), projection);
                lora.AddAdapter(adapterName, config, generator);
                wrapped++;
            }
        }
        SetActiveAdapter(model, adapterName);
        var (trainable, total) = model.CountParameters();
        return new LoraInjectionSummary(adapterName, wrapped, trainable, total);
    }

    /// <summary>The projection's LoRA wrapper, creating it (and swapping it into place) if needed.</summary>
    public static LoraLinear Wrap(ProjectionSet owner, ProjectionKind projection)
    {
        var module = owner[projection];
        if (module is LoraLinear existing) return existing;
        var lora = new LoraLinear(module);
        lora.train(owner.training); // a new module starts in training mode; follow the model (eval: no dropout)
        owner.Replace(projection, lora);
        return lora;
    }

    public static ProjectionSet Owner(DecoderBlock layer, ProjectionKind projection) => layer.Section(projection);

    /// <summary>Every wrapped projection, in module order.</summary>
    public static IEnumerable<WrappedProjection> Wrapped(DecoderModel model)
    {
        for (int i = 0; i < model.Layers.Count; i++)
            foreach (var projection in model.Config.Family.Projections) // Phi-3 has qkv/gate_up, not q/k/v/gate/up
            {
                var owner = Owner(model.Layers[i], projection);
                if (owner[projection] is LoraLinear lora) yield return new WrappedProjection(i, projection, owner, lora);
            }
    }

    /// <summary>The names of all adapters on the model, in the order they were added.</summary>
    public static IReadOnlyList<string> AdapterNames(DecoderModel model) =>
        Wrapped(model).SelectMany(w => w.Lora.Adapters.Keys).Distinct().ToList();

    /// <summary>The active adapter (null when the model runs as its base).</summary>
    public static string? ActiveAdapter(DecoderModel model) =>
        Wrapped(model).Select(w => w.Lora.ActiveAdapter).FirstOrDefault(a => a is not null);

    /// <summary>
    /// Selects the adapter every wrapped projection uses (null = base model only), e.g. per generation request,
    /// and makes exactly its tensors trainable. Projections the adapter does not touch run as their base.
    /// </summary>
    public static void SetActiveAdapter(DecoderModel model, string? adapterName)
    {
        var all = Wrapped(model).ToList();
        if (adapterName is not null && !all.Any(w => w.Lora.Adapters.ContainsKey(adapterName)))
        {
            var names = AdapterNames(model);
            throw new UserInputException($"no adapter named '{adapterName}' is loaded; loaded adapters: {(names.Count == 0 ? "none" : string.Join(", ", names))}");
        }
        foreach (var w in all) w.Lora.ActiveAdapter = adapterName is not null && w.Lora.Adapters.ContainsKey(adapterName) ? adapterName : null;
        foreach (var (_, p) in model.named_parameters()) p.requires_grad = false;
        if (adapterName is not null)
            foreach (var (_, p) in AdapterParameters(model, adapterName)) p.requires_grad = true;
    }

    /// <summary>
    /// The trainable tensors of one adapter (the active one by default), named as in PEFT's state dict without its
    /// <c>base_model.model.</c> prefix: <c>model.layers.{i}.self_attn.q_proj.lora_A.weight</c>. This is the list to
    /// hand to the optimizer; nothing else in the model is trained. A frozen A (FFA-LoRA) is not in it, though the
    /// adapter's files still hold it (<see cref="PeftAdapterFiles.Save"/> writes every tensor).
    /// </summary>
    public static IEnumerable<(string Name, Parameter P)> AdapterParameters(DecoderModel model, string? adapterName = null)
    {
        string? name = adapterName ?? ActiveAdapter(model);
        if (name is null) yield break;
        foreach (var w in Wrapped(model))
            if (w.Lora.Adapters.ContainsKey(name))
                foreach (var (suffix, p) in w.Lora.TrainableParameters(name))
                    yield return ($"{w.ModulePath}.{suffix}", p);
    }

    /// <summary>Freezes the A matrices of adapter <paramref name="adapterName"/> where they are (FFA-LoRA), e.g. after a
    /// resumed run read them back from its checkpoint; the trainable set is then B alone.</summary>
    public static void FreezeA(DecoderModel model, string adapterName = LoraLinear.DefaultAdapter)
    {
        var all = Wrapped(model).Where(w => w.Lora.Adapters.ContainsKey(adapterName)).ToList();
        if (all.Count == 0) throw new ArgumentException($"the model has no adapter '{adapterName}'", nameof(adapterName));
        foreach (var w in all) w.Lora.Adapters[adapterName].FreezeA();
        SetActiveAdapter(model, ActiveAdapter(model));
    }

    /// <summary>Removes one adapter everywhere; projections left with no adapter go back to their bare base module.</summary>
    public static void DeleteAdapter(DecoderModel model, string adapterName)
    {
        var all = Wrapped(model).Where(w => w.Lora.Adapters.ContainsKey(adapterName)).ToList();
        if (all.Count == 0) throw new UserInputException($"no adapter named '{adapterName}' is loaded; loaded adapters: {string.Join(", ", AdapterNames(model))}");
        string? active = ActiveAdapter(model);
        foreach (var w in all)
        {
            w.Lora.RemoveAdapter(adapterName);
            if (w.Lora.Adapters.Count == 0) w.Owner.Replace(w.Projection, w.Lora.BaseLayer);
        }
        SetActiveAdapter(model, active == adapterName ? null : active);
    }

    /// <summary>Removes every adapter and restores the base projections (PEFT's <c>unload()</c>).</summary>
    public static void Unload(DecoderModel model)
    {
        foreach (string name in AdapterNames(model)) DeleteAdapter(model, name);
    }

    /// <summary>PEFT's <c>print_trainable_parameters()</c> line for the model as it is now.</summary>
    public static string PrintTrainableParameters(DecoderModel model)
    {
        var (trainable, total) = model.CountParameters();
        return FormatTrainable(trainable, total);
    }

    /// <summary><c>trainable params: 2,359,296 || all params: 8,032,620,544 || trainable%: 0.0294</c>, formatted as PEFT's
    /// f-string (<c>{:,d}</c> and <c>{:.4f}</c>). All params include the adapters and count 4-bit weights by their logical size.</summary>
    public static string FormatTrainable(long trainable, long total)
    {
        double percent = total == 0 ? 0 : 100.0 * trainable / total;
        return string.Create(CultureInfo.InvariantCulture, $"trainable params: {trainable:N0} || all params: {total:N0} || trainable%: {percent:F4}");
    }
}
