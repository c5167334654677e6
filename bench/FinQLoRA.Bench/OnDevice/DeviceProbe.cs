using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using FinQLoRA.Adapters;
using FinQLoRA.Demo.RandomModels;
using FinQLoRA.Inference.Decoding;
using FinQLoRA.Models;
using FinQLoRA.Runtime.DeviceMemory;
using FinQLoRA.Training.Optimizers;
using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Bench.OnDevice;

/// <summary>
/// The child of <see cref="DeviceBench"/>: one configuration in a fresh process, its peak memory measured from before
/// the process's first CUDA call. Prints its figures as one JSON line, last.
/// </summary>
internal static class DeviceProbe
{
    public static int Run(BenchDeviceOptions d, string kind, Flags f)
    {
        if (!d.Device.IsCuda) set_num_threads(Environment.ProcessorCount);
        using var probe = PeakMemoryProbe.Start(d.Torch);
        var row = kind switch
        {
            "train" => Train(d, f, probe),
            "inference" => Inference(d, f, probe),
            _ => throw new UserInputException($"--probe '{kind}' is not one of train, inference"),
        };
        row["memory_source"] = probe.Source;
        Console.WriteLine(row.ToJsonString());
        return 0;
    }

    private static DecoderModel Build(BenchDeviceOptions d, int bits, out double seconds)
    {
        var sw = Stopwatch.StartNew();
        var model = RandomModel.Build(d.Shape, d.Torch, bits, seed: 1);
        BenchDeviceOptions.Synchronize(d.Torch);
        seconds = sw.Elapsed.TotalSeconds;
        return model;
    }

    private static Tensor RandomIds(BenchDeviceOptions d, int batch, int seq, ulong seed)
    {
        using var g = new Generator(seed, d.Torch);
        return randint(3, d.Shape.VocabSize, [batch, seq], dtype: ScalarType.Int64, device: d.Torch, generator: g);
    }

    private static JsonObject Train(BenchDeviceOptions d, Flags f, PeakMemoryProbe probe)
    {
        int bits = f.Int("bits", 4), batch = f.Int("batch", 4), seq = f.Int("seq", 512), steps = f.Int("steps", 3);
        int warmup = int.Parse(f.Get("warmup", "1"), CultureInfo.InvariantCulture);
        bool gc = f.Get("checkpointing", "off") == "on";
        double dropout = double.Parse(f.Get("dropout", "0.1"), CultureInfo.InvariantCulture);
        using var model = Build(d, bits, out double buildSeconds);
        long afterBuild = probe.PeakAboveBaselineBytes;
        LoraInjector.Apply(model, new LoraConfig { Rank = 4, Alpha = 32, Dropout = dropout, TargetModules = ["q_proj", "k_proj", "v_proj"] }, seed: 1);
        model.GradientCheckpointing = gc;
        model.train();
        using var optimizer = new AdamWOptimizer(LoraInjector.AdapterParameters(model).ToList(), new AdamWOptions(WeightDecay: 0));
        using var ids = RandomIds(d, batch, seq, 7);
        var times = new List<double>();
        double loss = double.NaN;
        for (int step = 0; step < warmup + steps; step++)
        {
            manual_seed(step + 1); // LoRA dropout, the same every run
            var sw = Stopwatch.StartNew();
            using (var scope = NewDisposeScope())
            {
                var logits = model.Forward(ids);
                var l = nn.functional.cross_entropy(logits.narrow(1, 0, seq - 1).reshape(-1, logits.shape[2]), ids.narrow(1, 1, seq - 1).reshape(-1));
                l.backward();
                loss = l.item<float>();
            }
            optimizer.Step(1e-4);
            optimizer.ZeroGrad();
            BenchDeviceOptions.Synchronize(d.Torch);
            if (step >= warmup) times.Add(sw.Elapsed.TotalSeconds);
        }
        long peak = probe.Stop();
        double stepSeconds = times.Order().ElementAt(times.Count / 2);
        double rate = MatmulRate(d.Torch);
        var c = d.Shape;
        long kv = c.NumKvHeads * (long)c.HeadDim, h = c.HiddenSize;
        long linear = (2 * h * h + 2 * h * kv + 3 * h * c.IntermediateSize) * c.NumLayers + c.VocabSize * h;
        // the FLOPs TrainStepBench and the PEFT peer count: forward and the frozen base's input gradients, plus attention
        double flops = 4.0 * linear * batch * seq + 12.0 * batch * seq * (double)seq * h * c.NumLayers;
        return new JsonObject
        {
            ["bits"] = bits, ["batch"] = batch, ["seq"] = seq, ["grad_checkpointing"] = gc, ["build_s"] = buildSeconds,
            ["step_s"] = stepSeconds, ["tokens_per_s"] = batch * seq / stepSeconds, ["mfu_bf16"] = flops / stepSeconds / rate,
            ["bf16_matmul_flops"] = rate, ["loss"] = loss, ["peak_bytes"] = peak, ["after_build_bytes"] = afterBuild,
            ["steps"] = new JsonArray([.. times.Select(t => (JsonNode)t)]),
        };
    }

    private static JsonObject Inference(BenchDeviceOptions d, Flags f, PeakMemoryProbe probe)
    {
        int bits = f.Int("bits", 4), batch = f.Int("batch", 1), prompt = f.Int("prompt", 448), decode = f.Int("decode", 64);
        using var noGrad = no_grad();
        using var model = Build(d, bits, out double buildSeconds);
        long afterBuild = probe.PeakAboveBaselineBytes;
        Decode(model, d, batch, Math.Min(prompt, 16), 2); // warm-up: kernels, cuBLAS handles
        var (prefill, decodeSeconds) = Decode(model, d, batch, prompt, decode);
        long peak = probe.Stop();
        return new JsonObject
        {
            ["bits"] = bits, ["batch"] = batch, ["prompt"] = prompt, ["decode"] = decode, ["build_s"] = buildSeconds,
            ["prefill_s"] = prefill, ["decode_s"] = decodeSeconds, ["decode_tokens_per_s"] = batch * decode / decodeSeconds,
            ["peak_bytes"] = peak, ["after_build_bytes"] = afterBuild,
        };
    }

    /// <summary>One prefill of random ids into a fresh KV cache, then greedy decode steps; seconds of each part.</summary>
    private static (double Prefill, double Decode) Decode(DecoderModel model, BenchDeviceOptions d, int batch, int prompt, int steps)
    {
        using var scope = NewDisposeScope();
        using var cache = new KvCache(model.Config, batch, prompt + steps, model.ComputeDType, d.Torch);
        var ids = RandomIds(d, batch, prompt, 11);
        var sw = Stopwatch.StartNew();
        var next = model.Forward(ids, null, cache, lastOnly: true).argmax(-1);
        BenchDeviceOptions.Synchronize(d.Torch);
        double prefill = sw.Elapsed.TotalSeconds;
        var step = DecodeStep.Choose(model, cache);
        sw.Restart();
        for (int s = 0; s < steps; s++)
        {
            using var inner = NewDisposeScope();
            next = step.Forward(next).argmax(-1).MoveToOuterDisposeScope();
        }
        BenchDeviceOptions.Synchronize(d.Torch);
        _ = next[0, 0].item<long>();
        return (prefill, sw.Elapsed.TotalSeconds);
    }

    /// <summary>bf16 matmul FLOP/s on the device (8192³ on a GPU, 1024³ on the CPU), after the probe stopped.</summary>
    private static double MatmulRate(Device device)
    {
        using var scope = NewDisposeScope();
        int n = device.type == DeviceType.CUDA ? 8192 : 1024, reps = device.type == DeviceType.CUDA ? 20 : 3;
        var a = randn([n, n], ScalarType.BFloat16, device);
        var b = randn([n, n], ScalarType.BFloat16, device);
        a.matmul(b).Dispose();
        BenchDeviceOptions.Synchronize(device);
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < reps; i++) a.matmul(b).Dispose();
        BenchDeviceOptions.Synchronize(device);
        return 2.0 * n * n * (double)n * reps / sw.Elapsed.TotalSeconds;
    }
}
