using System.Text.Json.Nodes;
using FinQLoRA.Tests.Support;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Adapters;

/// <summary>The tests/fixtures/peft folder and its logits files: {"prompt_ids": [[…]], "logits": [[[…vocab…]…]]}.</summary>
internal static class PeftFixtures
{
    public static string Root => System.IO.Path.Combine(Shared.RepoRoot, "tests", "fixtures", "peft");

    public static string Path(string folder) => System.IO.Path.Combine(Root, folder);

    public static (long[][] Ids, Tensor Logits) ReadLogits(string file)
    {
        var o = JsonNode.Parse(File.ReadAllText(file))!.AsObject();
        long[][] ids = o["prompt_ids"]!.AsArray().Select(p => p!.AsArray().Select(i => (long)i!).ToArray()).ToArray();
        var rows = o["logits"]!.AsArray();
        long t = rows[0]!.AsArray().Count, v = rows[0]![0]!.AsArray().Count;
        float[] flat = rows.SelectMany(b => b!.AsArray().SelectMany(pos => pos!.AsArray().Select(x => (float)(double)x!))).ToArray();
        return (ids, tensor(flat, [ids.Length, t, v]));
    }

    public static void WriteLogits(string file, long[][] ids, Tensor logits)
    {
        var data = logits.to(ScalarType.Float32).cpu();
        var o = new JsonObject
        {
            ["prompt_ids"] = new JsonArray(ids.Select(p => (JsonNode)new JsonArray(p.Select(i => (JsonNode)i).ToArray())).ToArray()),
            ["logits"] = new JsonArray(Enumerable.Range(0, (int)data.shape[0]).Select(b => (JsonNode)new JsonArray(
                Enumerable.Range(0, (int)data.shape[1]).Select(t => (JsonNode)new JsonArray(
                    data[b, t].data<float>().ToArray().Select(x => (JsonNode)(double)x).ToArray())).ToArray())).ToArray()),
        };
        FinQLoRA.IO.AtomicFile.WriteAllText(file, o.ToJsonString());
    }
}
