using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace FinQLoRA.Tests.Adapters;

/// <summary>
/// One family's PEFT adapter layout fixture (tests/fixtures/peft/families/NAME: PEFT's adapter_config.json and the
/// tensor names and shapes of its adapter_model.safetensors, written by write_fixtures.py from PEFT's rules), made into
/// a complete adapter folder with seeded values. The safetensors file is written here as the reference implementation
/// (Python safetensors) writes it, without FinQLoRA's writer: an 8-byte little-endian header length, the compact JSON
/// header (<c>__metadata__</c> first, then the tensors in data order: by dtype, largest first, then by name), padded
/// with spaces to a multiple of 8, then the little-endian data.
/// </summary>
internal sealed partial class PeftFamilyFixture
{
    public const string WeightsFile = "adapter_model.safetensors";
    public const string ConfigFile = "adapter_config.json";

    public sealed record Entry(string Name, long[] Shape, int Layer, string Section, string Module, string Part);

    public string Family { get; }
    public string Folder => PeftFixtures.Path(Path.Combine("families", Family));
    public JsonObject Config { get; }
    public IReadOnlyList<Entry> Entries { get; }

    public PeftFamilyFixture(string family)
    {
        Family = family;
        Config = JsonNode.Parse(File.ReadAllText(Path.Combine(Folder, ConfigFile)))!.AsObject();
        Entries = JsonNode.Parse(File.ReadAllText(Path.Combine(Folder, "adapter_tensors.json")))!.AsArray().Select(n =>
        {
            string name = n!["name"]!.GetValue<string>();
            var m = PeftKey().Match(name);
            Assert.True(m.Success, $"{family}: '{name}' is not a PEFT LoRA key");
            return new Entry(name, n["shape"]!.AsArray().Select(d => (long)d!).ToArray(),
                int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), m.Groups[2].Value, m.Groups[3].Value, m.Groups[4].Value);
        }).ToList();
    }

    public int Rank => Config["r"]!.GetValue<int>();

    /// <summary>PEFT's LoRA scale: lora_alpha / r, or lora_alpha / √r with use_rslora.</summary>
    public double Scaling => Config["lora_alpha"]!.GetValue<double>() / (Config["use_rslora"]!.GetValue<bool>() ? Math.Sqrt(Rank) : Rank);

    public bool Dora => Config["use_dora"]!.GetValue<bool>();

    public IReadOnlyList<string> TargetModules => Config["target_modules"]!.AsArray().Select(t => t!.GetValue<string>()).ToList();

    /// <summary>Writes the adapter folder: the fixture's config as it is, and seeded values for every tensor (A within
    /// LoRA's Kaiming bound 1/√64, B of a trained adapter's order, so the adapter changes the logits clearly; DoRA
    /// magnitudes in [0.8, 1.6], around the base rows' norms).</summary>
    public Dictionary<string, float[]> WriteAdapter(string dir, int seed)
    {
        Directory.CreateDirectory(dir);
        File.Copy(Path.Combine(Folder, ConfigFile), Path.Combine(dir, ConfigFile), overwrite: true);
        var random = new Random(seed);
        var values = new Dictionary<string, float[]>();
        foreach (var e in Entries)
        {
            long n = e.Shape.Aggregate(1L, (a, b) => a * b);
            values[e.Name] = Enumerable.Range(0, (int)n).Select(_ => e.Part switch
            {
                "lora_magnitude_vector" => (float)(0.8 + 0.8 * random.NextDouble()),
                "lora_A.weight" => (float)((random.NextDouble() - 0.5) * 0.25),
                _ => (float)((random.NextDouble() - 0.5) * 0.1),
            }).ToArray();
        }
        WriteSafetensorsF32(Path.Combine(dir, WeightsFile), Entries.Select(e => (e.Name, e.Shape, values[e.Name])).ToList());
        return values;
    }

    /// <summary>The reference writer's layout for F32 tensors (one dtype: data in name order).</summary>
    private static void WriteSafetensorsF32(string path, IReadOnlyList<(string Name, long[] Shape, float[] Data)> tensors)
    {
        var ordered = tensors.OrderBy(t => t.Name, StringComparer.Ordinal).ToList();
        var header = new StringBuilder("{\"__metadata__\":{\"format\":\"pt\"}");
        long offset = 0;
        foreach (var (name, shape, data) in ordered)
        {
            long end = offset + 4L * data.Length;
            header.Append(CultureInfo.InvariantCulture, $",\"{name}\":{{\"dtype\":\"F32\",\"shape\":[{string.Join(",", shape)}],\"data_offsets\":[{offset},{end}]}}");
            offset = end;
        }
        header.Append('}');
        byte[] json = Encoding.UTF8.GetBytes(header.ToString());
        int padding = (8 - json.Length % 8) % 8;
        using var stream = File.Create(path);
        Span<byte> word = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(word, json.Length + padding);
        stream.Write(word);
        stream.Write(json);
        for (int i = 0; i < padding; i++) stream.WriteByte((byte)' ');
        foreach (var (_, _, data) in ordered)
            foreach (float x in data)
            {
                BinaryPrimitives.WriteSingleLittleEndian(word[..4], x);
                stream.Write(word[..4]);
            }
    }

    [GeneratedRegex(@"^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.([a-z_]+)\.(lora_A\.weight|lora_B\.weight|lora_magnitude_vector)$")]
    private static partial Regex PeftKey();
}
