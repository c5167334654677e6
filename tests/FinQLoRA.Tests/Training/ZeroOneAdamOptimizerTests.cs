using System.Text.Json;
using FinQLoRA.Training.Optimizers;
using TorchSharp;
using TorchSharp.Modules;
using static FinQLoRA.Tests.Training.OptimizerTestParameters;

namespace FinQLoRA.Tests.Training;

public sealed class ZeroOneAdamOptimizerTests
{
    // Tiny schedule so that every phase shows up in 20 steps:
    //   var_freeze_step 8, var_update_scaler κ = 2, local_step_scaler 2, local_step_clipper H = 4.
    private static readonly ZeroOneAdamOptions Tiny = new(VarFreezeStep: 8, VarUpdateScaler: 2, LocalStepScaler: 2, LocalStepClipper: 4);

    // Derivation of the schedule (t = step count, the first call included):
    //   t=1  initialisation, nothing moves.
    //   var_interval 1: t=2 variance (counter 1), t=3 variance (counter 2 → 0, interval 2)
    //   var_interval 2: t=4 variance (counter 1), t=5 one-bit, t=6 variance (counter 2 → 0, interval 4)
    //   var_interval 4: t=7 one-bit, t=8 variance (counter 1), t=9 one-bit; 9 > 8 ⇒ freeze, error buffers zeroed.
    //   local_step_interval 1: t=10 sync (counter 1), t=11 sync (counter 2 → 0, interval 2)
    //   local_step_interval 2: t=12 sync (12 % 2 = 0; counter 1), t=13 local (counter 2 → 0, interval 4)
    //   local_step_interval 4 = H: t=14 local, t=15 local (counter 2 → 0, interval min(4, 8) = 4), t=16 sync,
    //   t=17..19 local, t=20 sync.
    private static readonly string[] ExpectedPhases =
    [
        "init", "variance", "variance", "variance", "one-bit", "variance", "one-bit", "variance", "one-bit",
        "local+sync", "local+sync", "local+sync", "local", "local", "local", "local+sync", "local", "local", "local", "local+sync",
    ];

    [Fact]
    public void Defaults_are_deepspeeds()
    {
        Assert.Equal(new ZeroOneAdamOptions(0.9, 0.999, 1e-8, 0.0, 100000, 16, 32678, 16), new ZeroOneAdamOptions());
        Assert.Throws<UserInputException>(() => new ZeroOneAdamOptimizer([("p", Create(1f))], new LocalCommunication(), new ZeroOneAdamOptions(LocalStepClipper: 0)));
    }

    [Fact]
    public void First_two_steps_match_hand_values()
    {
        var p = Create(1f, -2f);
        using var communication = new LocalCommunication();
        using var optimizer = new ZeroOneAdamOptimizer([("p", p)], communication, Tiny);

        // t=1: DeepSpeed's initialisation step consumes the gradient and moves nothing.
        SetGrad(p, 0.5, -0.25);
        optimizer.Step(0.01);
        Assert.Equal(new[] { 1f, -2f }, Values(p));

        // t=2: variance step, no bias correction: m = 0.1·g, v = 0.001·g²,
        // p −= lr·m/(√v + ε) = 0.01·0.1·g/(√0.001·|g|) = 0.01·√10·sign(g) = 0.0316227766·sign(g).
        SetGrad(p, 0.5, -0.25);
        optimizer.Step(0.01);
        Assert.Equal(1 - 0.0316227766, Values(p)[0], 6);
        Assert.Equal(-2 + 0.0316227766, Values(p)[1], 6);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.01)]
    public void Trajectory_and_phases_match_an_independent_scalar_transcription(double weightDecay)
    {
        var options = Tiny with { WeightDecay = weightDecay };
        var p = Create(1f, -2f);
        using var inner = new LocalCommunication();
        var communication = new RecordingCommunication(inner);
        using var optimizer = new ZeroOneAdamOptimizer([("w", p)], communication, options);
        var reference = new ZeroOneAdamScalarReference([1.0, -2.0], 0.9, 0.999, 1e-8, weightDecay, 8, 2, 2, 4);

        var expectedCalls = new List<string>();
        for (int t = 1; t <= 20; t++)
        {
            double[] g = Gradient(t);
            double lr = LearningRate(t);
            string phase = reference.Step(g, lr);
            Assert.Equal(ExpectedPhases[t - 1], phase);

            // The optimizer announces the phase before the step (DeepSpeed's enable_backward_allreduce).
            Assert.Equal(phase is "init" or "variance", optimizer.FullPrecisionThisStep);
            Assert.Equal(phase == "local+sync", optimizer.SyncThisStep);

            SetGrad(p, g);
            communication.Step = t;
            optimizer.Step(lr);

            if (phase == "variance") expectedCalls.Add($"{t}:full");
            if (phase is "one-bit" or "local+sync") expectedCalls.Add($"{t}:compressed:w");
            if (t == 9) expectedCalls.Add("9:reset");

            float[] actual = Values(p);
            for (int i = 0; i < 2; i++)
                Assert.True(Math.Abs(actual[i] - reference.P[i]) <= 2e-5 * Math.Max(1, Math.Abs(reference.P[i])),
                    $"step {t} ({phase}) p[{i}]: optimizer {actual[i]}, reference {reference.P[i]}");
        }

        Assert.Equal(expectedCalls, communication.Calls);
        Assert.Equal(4, reference.VarInterval);        // 1 → 2 → 4 before the freeze
        Assert.Equal(4, reference.LocalStepInterval);  // 1 → 2 → 4, clipped at H = 4
        Assert.True(optimizer.Frozen);
        Assert.Equal(20, optimizer.StepCount);

        // The state agrees too: m was rebuilt from the last sync, u was reset there.
        using var state = optimizer.StateDict();
        float[] m = Values(state.Tensors["w.exp_avg"]), v = Values(state.Tensors["w.exp_avg_sq"]);
        for (int i = 0; i < 2; i++)
        {
            Assert.True(Math.Abs(m[i] - reference.M[i]) <= 1e-4 * Math.Max(1e-3, Math.Abs(reference.M[i])), $"m[{i}]: {m[i]} vs {reference.M[i]}");
            Assert.True(Math.Abs(v[i] - reference.V[i]) <= 1e-5 * Math.Abs(reference.V[i]), $"v[{i}]: {v[i]} vs {reference.V[i]}");
        }
        Assert.Equal(new float[2], Values(state.Tensors["w.momentum_accumulator"]));
    }

    [Theory]
    [InlineData(1)]   // right after the initialisation step
    [InlineData(7)]   // mid variance schedule, error buffers in use
    [InlineData(13)]  // frozen, between syncs: u and lrs are non-zero
    public void Resume_from_state_dict_is_bit_identical(int before)
    {
        const int total = 20;
        var uninterrupted = NewParameters();
        using (var communication = new LocalCommunication())
        using (var optimizer = new ZeroOneAdamOptimizer(uninterrupted, communication, Tiny with { WeightDecay = 0.01 }))
            for (int t = 1; t <= total; t++) TakeStep(optimizer, t);

        var first = NewParameters();
        OptimizerCheckpoint saved;
        using (var communication = new LocalCommunication())
        using (var optimizer = new ZeroOneAdamOptimizer(first, communication, Tiny with { WeightDecay = 0.01 }))
        {
            for (int t = 1; t <= before; t++) TakeStep(optimizer, t);
            saved = optimizer.StateDict();
        }
        string json = JsonSerializer.Serialize<OptimizerScalarState>(saved.Scalars);
        Assert.Contains("\"algorithm\":\"zero_one_adam\"", json);
        var scalars = JsonSerializer.Deserialize<OptimizerScalarState>(json)!;
        Assert.Equal(saved.Scalars, scalars);

        var resumed = first.Select(p => (p.Name, CloneOf(p.Parameter))).ToList();
        using (var communication = new LocalCommunication())
        using (var optimizer = new ZeroOneAdamOptimizer(resumed, communication, Tiny with { WeightDecay = 0.01 }))
        {
            optimizer.LoadStateDict(saved with { Scalars = scalars });
            saved.Dispose();
            for (int t = before + 1; t <= total; t++) TakeStep(optimizer, t);
        }

        for (int i = 0; i < uninterrupted.Count; i++)
            Assert.Equal(Bits(uninterrupted[i].Parameter), Bits(resumed[i].Item2));
    }

    [Fact]
    public void Every_parameter_needs_a_gradient()
    {
        var a = Create(1f);
        var b = Create(2f);
        using var communication = new LocalCommunication();
        using var optimizer = new ZeroOneAdamOptimizer([("a", a), ("b", b)], communication, Tiny);
        SetGrad(a, 1.0);
        Assert.Contains("'b'", Assert.Throws<InvalidOperationException>(() => optimizer.Step(0.01)).Message);
    }

    [Fact]
    public void A_sync_after_zero_learning_rates_is_a_user_error()
    {
        var p = Create(1f, 2f);
        using var communication = new LocalCommunication();
        using var optimizer = new ZeroOneAdamOptimizer([("p", p)], communication, Tiny with { VarFreezeStep = 2 });
        for (int t = 1; t <= 3; t++)
        {
            SetGrad(p, 0.1, 0.2);
            optimizer.Step(0.01); // t=3 > 2 ⇒ frozen afterwards
        }
        SetGrad(p, 0.1, 0.2);
        Assert.Contains("var_freeze_step", Assert.Throws<UserInputException>(() => optimizer.Step(0.0)).Message);
    }

    private static double[] Gradient(int t) => [0.5 + 0.3 * Math.Sin(t), -0.2 + 0.1 * Math.Cos(2 * t)];

    private static double LearningRate(int t) => 0.01 * (1 + 0.05 * t);

    private static List<(string Name, Parameter Parameter)> NewParameters() =>
        [("layers.0.lora_A", Create([2, 3], 21)), ("layers.0.lora_B", Create([5], 22))];

    private static void TakeStep(IAdapterOptimizer optimizer, int t)
    {
        using var scope = torch.NewDisposeScope();
        foreach (var (_, parameter) in optimizer.Parameters)
            SetGrad(parameter, parameter.detach() * 0.5 - 0.2 + 0.05 * Math.Cos(t));
        optimizer.Step(LearningRate(t));
        optimizer.ZeroGrad();
    }

    /// <summary>Passes calls through to <see cref="LocalCommunication"/> and logs them with the step number.</summary>
    private sealed class RecordingCommunication(IOptimizerCommunication inner) : IOptimizerCommunication
    {
        public int Step { get; set; }
        public List<string> Calls { get; } = [];

        public void AllReduceAverage(torch.Tensor tensor)
        {
            Calls.Add($"{Step}:full");
            inner.AllReduceAverage(tensor);
        }

        public torch.Tensor CompressedAllReduce(torch.Tensor buffer, string key)
        {
            Calls.Add($"{Step}:compressed:{key}");
            return inner.CompressedAllReduce(buffer, key);
        }

        public void ResetCompressionErrors()
        {
            Calls.Add($"{Step}:reset");
            inner.ResetCompressionErrors();
        }

        public IReadOnlyDictionary<string, torch.Tensor> SaveCompressionErrors() => inner.SaveCompressionErrors();

        public void LoadCompressionErrors(IReadOnlyDictionary<string, torch.Tensor> state) => inner.LoadCompressionErrors(state);
    }
}
