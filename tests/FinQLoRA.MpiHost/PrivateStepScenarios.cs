using System.Globalization;
using System.Security.Cryptography;
using FinQLoRA.Adapters;
using FinQLoRA.Data.Sft;
using FinQLoRA.Demo;
using FinQLoRA.Distributed;
using FinQLoRA.Loading;
using FinQLoRA.Models;
using FinQLoRA.Privacy;
using FinQLoRA.Training.Optimizers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FinQLoRA.MpiHost;

/// <summary>
/// DP-SGD on 2 ranks with a zero data gradient (examples without target tokens, different units per rank): 8 steps of
/// <see cref="PrivateTrainingStep"/> with AdamW. Each rank prints what the step wrote into .grad compared with rank 0's
/// (seed, step) noise stream alone, the pooled variance of those gradients over (σC/E)², the units per step, and a
/// digest of its final adapter.
/// </summary>
internal static class PrivateStepScenarios
{
    public const double Sigma = 1.5, MaxGradNorm = 0.4, ExpectedUnits = 3;
    public const long Seed = 21;
    public const int Steps = 8;

    private static readonly ModelConfig Tiny = new()
    {
        HiddenSize = 32, IntermediateSize = 64, NumLayers = 2, NumHeads = 4, NumKvHeads = 2, HeadDim = 8,
        VocabSize = 128, MaxPositionEmbeddings = 64, RmsNormEps = 1e-5, RopeTheta = 10000,
        TieWordEmbeddings = false, BosTokenId = 1, EosTokenIds = [2],
    };

    public static void Noise(ICommunicator comm)
    {
        int r = comm.Rank;
        var folder = Directory.CreateTempSubdirectory("finqlora-dp-noise-");
        try
        {
            RandomLlama.WriteHfFolder(Tiny, folder.FullName, seed: 17);
            using var model = ModelLoading.LoadModel(folder.FullName, new ModelLoadOptions { DType = ScalarType.Float32 });
            LoraInjector.Apply(model, new LoraConfig { Rank = 4, Alpha = 8, Dropout = 0, TargetModules = ["q_proj", "v_proj"] }, seed: 3);
            List<(string Name, Parameter P)> parameters = [.. LoraInjector.AdapterParameters(model)];
            using var optimizer = new GradientRecorder(parameters);
            var step = new PrivateTrainingStep(model, parameters, optimizer, comm, new PrivateStepSettings(Sigma, MaxGradNorm, ExpectedUnits, Seed),
                padId: 0, CPU, CancellationToken.None);

            double largestDeviation = 0, squares = 0;
            long count = 0;
            var units = new List<long>();
            for (int t = 1; t <= Steps; t++)
            {
                // no target token: the data gradient is exactly zero; units never shared between ranks
                List<TokenizedExample> batch = [.. Enumerable.Range(0, 2).Select(j =>
                    new TokenizedExample([1, 10 + t, 20 + j, 30 + r], [-100, -100, -100, -100]) { Unit = 1000 * r + 10 * t + j })];
                units.Add(step.Run([batch], t, lr: 1e-3).Units);
                using var scope = NewDisposeScope();
                var stream = parameters.Select(p => zeros_like(p.P)).ToArray();
                GradientNoise.Add(stream, Sigma, MaxGradNorm, Seed, t);
                for (int i = 0; i < stream.Length; i++)
                {
                    var written = optimizer.Last[i];
                    largestDeviation = Math.Max(largestDeviation, (written - stream[i] / ExpectedUnits).abs().max().item<float>());
                    squares += written.to(ScalarType.Float64).square().sum().item<double>();
                    count += written.numel();
                }
            }
            double std = Sigma * MaxGradNorm / ExpectedUnits;
            Report.Line(r, "noise-vs-rank0-stream", largestDeviation.ToString("R", CultureInfo.InvariantCulture));
            Report.Line(r, "variance-ratio", (squares / count / (std * std)).ToString("R", CultureInfo.InvariantCulture));
            Report.Line(r, "coordinates", count.ToString(CultureInfo.InvariantCulture));
            Report.Line(r, "units", string.Join(",", units));
            Report.Line(r, "adapter-sha256", Digest(parameters));
        }
        finally
        {
            folder.Delete(recursive: true); // the temp folder this scenario created for its model, nothing else
        }
    }

    private static string Digest(IEnumerable<(string Name, Parameter P)> parameters)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (_, p) in parameters)
        {
            using var cpu = p.detach().cpu().contiguous();
            sha.AppendData(cpu.bytes);
        }
        return Convert.ToHexString(sha.GetHashAndReset());
    }

    /// <summary>AdamW that keeps the gradients of its last step (what the DP step wrote into .grad).</summary>
    private sealed class GradientRecorder(IReadOnlyList<(string Name, Parameter P)> parameters) : IAdapterOptimizer
    {
        private readonly AdamWOptimizer _inner = new(parameters);
        public Tensor[] Last { get; private set; } = [];
        public IReadOnlyList<(string Name, Parameter Parameter)> Parameters => _inner.Parameters;
        public bool CommunicatesGradients => false;

        public void Step(double lr)
        {
            foreach (var t in Last) t.Dispose();
            Last = [.. _inner.Parameters.Select(p =>
            {
                var copy = p.Parameter.grad!.detach().clone();
                copy.DetachFromDisposeScope();
                return copy;
            })];
            _inner.Step(lr);
        }

        public void ZeroGrad() => _inner.ZeroGrad();
        public OptimizerCheckpoint StateDict() => _inner.StateDict();
        public void LoadStateDict(OptimizerCheckpoint state) => _inner.LoadStateDict(state);

        public void Dispose()
        {
            foreach (var t in Last) t.Dispose();
            _inner.Dispose();
        }
    }
}
