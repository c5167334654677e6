using System.Globalization;
using FinQLoRA.Formats.Checkpoints;
using static TorchSharp.torch;

namespace FinQLoRA.Adapters.Averaging;

/// <summary>
/// What makes adapters averageable, checked before anything is computed: the same base (the sha256 of the base's weight
/// files in every input's lineage.json when all have them, else <c>base_model_name_or_path</c>), the same
/// target_modules, r, lora_alpha, use_rslora, use_dora and lora_a_frozen, the same tensor names and shapes, and for
/// FFA-LoRA adapters bit-identical A tensors. Each refusal is one line naming the adapter, the key and both values.
/// </summary>
/// <param name="BaseCheckedBy">which identity of the base was compared</param>
/// <param name="SharedA">every A tensor is bit-identical across the inputs, so avg(Bᵢ)·A = avg(Bᵢ·A) exactly</param>
public sealed record AdapterCompatibility(string BaseCheckedBy, string BaseIdentity, bool LoraAFrozen, long? LoraASeed, bool SharedA)
{
    public const string ByWeightHashes = "the sha256 of the base's weight files in each adapter's lineage.json";
    public const string ByName = "base_model_name_or_path in adapter_config.json (not every adapter has a lineage.json listing the base's files)";

    public static AdapterCompatibility Check(IReadOnlyList<AdapterToAverage> adapters)
    {
        var first = adapters[0];
        bool byHash = adapters.All(a => a.BaseWeights != null);
        foreach (var a in adapters.Skip(1))
        {
            if (byHash) Same(a, first, "base model weights (lineage.json inputs.model)", x => x.BaseWeights!);
            else Same(a, first, "base_model_name_or_path", x => x.Config.BaseModelNameOrPath ?? "(none)");
            Same(a, first, "target_modules", x => string.Join(",", x.Config.TargetModules.Order(StringComparer.Ordinal)));
            Same(a, first, "r", x => x.Config.Rank.ToString(CultureInfo.InvariantCulture));
            Same(a, first, "lora_alpha", x => x.Config.Alpha.ToString("R", CultureInfo.InvariantCulture));
            Same(a, first, "use_rslora", x => Bool(x.Config.UseRsLora));
            Same(a, first, "use_dora", x => Bool(x.Config.UseDora));
            Same(a, first, "lora_a_frozen", x => x.Lineage is null ? "false (no lineage.json)" : Bool(x.LoraAFrozen));
            if (a.LoraAFrozen && a.LoraASeed is not null && first.LoraASeed is not null) Same(a, first, "lora_a_seed", x => x.LoraASeed!.Value.ToString(CultureInfo.InvariantCulture));
            SameTensors(a, first);
        }
        bool shared = AllAIdentical(adapters, first.LoraAFrozen);
        return new AdapterCompatibility(byHash ? ByWeightHashes : ByName, byHash ? first.BaseWeights! : first.Config.BaseModelNameOrPath ?? "(none)",
            first.LoraAFrozen, first.LoraAFrozen ? first.LoraASeed : null, shared);
    }

    /// <summary>The tensor names of an adapter file that hold A.</summary>
    public static IEnumerable<string> ATensors(AdapterToAverage a) =>
        a.Weights.Entries.Select(e => e.Name).Where(n => PeftAdapterKey.TryParse(n, out _)?.Part == PeftAdapterKey.A).Order(StringComparer.Ordinal);

    private static void Same(AdapterToAverage a, AdapterToAverage first, string key, Func<AdapterToAverage, string> value)
    {
        string have = value(a), want = value(first);
        if (have != want) throw Differs(a, first, key, have, want);
    }

    private static UserInputException Differs(AdapterToAverage a, AdapterToAverage first, string key, string have, string want) =>
        new($"adapters average: adapter {a.Input} has {key} = {have} but adapter {first.Input} has {key} = {want}; {Fix(key)}");

    private static string Fix(string key) => key switch
    {
        "lora_a_frozen" => "FFA-LoRA adapters (frozen A) average only with each other: train every site with the same lora_a_frozen",
        "lora_a_seed" => "FFA-LoRA adapters share A only when every site trains with the same seed",
        _ => "only adapters of one base and one shape average",
    };

    private static void SameTensors(AdapterToAverage a, AdapterToAverage first)
    {
        var mine = a.Weights.Entries.ToDictionary(e => e.Name);
        var theirs = first.Weights.Entries.ToDictionary(e => e.Name);
        if (theirs.Keys.FirstOrDefault(k => !mine.ContainsKey(k)) is { } missing)
            throw Differs(a, first, "tensors", $"no '{missing}'", $"'{missing}'");
        if (mine.Keys.FirstOrDefault(k => !theirs.ContainsKey(k)) is { } extra)
            throw Differs(a, first, "tensors", $"'{extra}'", $"no '{extra}'");
        foreach (var (name, entry) in theirs)
            if (!mine[name].Shape.SequenceEqual(entry.Shape))
                throw Differs(a, first, $"the shape of '{name}'", Shape(mine[name]), Shape(entry));
    }

    /// <summary>Compares every A tensor byte for byte with the first input's. For FFA-LoRA inputs a difference is
    /// refused (naming the tensor and the first element that differs); otherwise it only means the average is inexact.</summary>
    private static bool AllAIdentical(IReadOnlyList<AdapterToAverage> adapters, bool required)
    {
        foreach (string name in ATensors(adapters[0]))
        {
            using var scope = NewDisposeScope();
            var reference = adapters[0].Weights.Read(name);
            foreach (var a in adapters.Skip(1))
            {
                var other = a.Weights.Read(name);
                if (other.dtype == reference.dtype && other.bytes.SequenceEqual(reference.bytes)) continue;
                if (!required) return false;
                var (index, have, want) = FirstDifference(other, reference);
                throw new UserInputException($"adapters average: adapter {a.Input} has {name}[{index}] = {have} but adapter {adapters[0].Input} has {want} ({SafetensorsFile.Describe(a.Weights.Entry(name))} vs {SafetensorsFile.Describe(adapters[0].Weights.Entry(name))}); FFA-LoRA adapters average exactly only with one frozen A: train every site with lora_a_frozen true and the same seed");
            }
        }
        return true;
    }

    private static (long Index, string Have, string Want) FirstDifference(Tensor have, Tensor want)
    {
        var h = have.to(ScalarType.Float64).flatten().data<double>().ToArray();
        var w = want.to(ScalarType.Float64).flatten().data<double>().ToArray();
        for (long i = 0; i < h.Length; i++)
            if (BitConverter.DoubleToInt64Bits(h[i]) != BitConverter.DoubleToInt64Bits(w[i]))
                return (i, h[i].ToString("R", CultureInfo.InvariantCulture), w[i].ToString("R", CultureInfo.InvariantCulture));
        return (0, $"a {have.dtype} tensor", $"a {want.dtype} tensor"); // same values, other dtype
    }

    private static string Shape(TensorEntry e) => $"[{string.Join(", ", e.Shape)}]";

    private static string Bool(bool b) => b ? "true" : "false";
}
