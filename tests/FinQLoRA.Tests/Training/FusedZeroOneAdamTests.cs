using FinQLoRA.Training.Optimizers;
using TorchSharp;
using TorchSharp.Modules;
using static FinQLoRA.Tests.Training.OptimizerTestParameters;

namespace FinQLoRA.Tests.Training;

/// <summary>0/1 Adam's flat-buffer local steps against the same optimizer kept per parameter, bit for bit.</summary>
public sealed class FusedZeroOneAdamTests
{
    // Odd sizes put elements in the kernels' scalar tails per tensor but in the vector body of the flat buffer.
    private static readonly long[][] Shapes = [[3, 5], [7], [16, 4], [4, 33], [1], [256, 160]];

    // Freeze after step 9, then syncs at 10, 11, 12, 16, 20 and local steps at 13–15 and 17–19 (see the schedule in
    // ZeroOneAdamOptimizerTests).
    private static readonly ZeroOneAdamOptions Tiny = new(WeightDecay: 0.01, VarFreezeStep: 8, VarUpdateScaler: 2, LocalStepScaler: 2, LocalStepClipper: 4);

    [Fact]
    public void Local_steps_over_flat_buffers_are_bit_identical_to_per_parameter_steps()
    {
        var ours = Shapes.Select((shape, i) => Create(shape, 200 + i)).ToArray();
        var theirs = ours.Select(CloneOf).ToArray();
        using var ourCommunication = new LocalCommunication();
        using var theirCommunication = new LocalCommunication();
        using var optimizer = new ZeroOneAdamOptimizer(Named(ours), ourCommunication, Tiny);
        using var reference = new ZeroOneAdamOptimizer(Named(theirs), theirCommunication, Tiny, flatBuffers: false);

        int fused = 0;
        for (int step = 1; step <= 20; step++)
        {
            SetRandomGrads(ours, theirs, step);
            double lr = 1e-2 * (1 + 0.1 * step);
            optimizer.Step(lr);
            reference.Step(lr);
            if (optimizer.LastStepFused) fused++;
            Assert.False(reference.LastStepFused);
            optimizer.ZeroGrad();
            reference.ZeroGrad();

            using var ourState = optimizer.StateDict();
            using var theirState = reference.StateDict();
            Assert.Equal(theirState.Tensors.Keys.Order(), ourState.Tensors.Keys.Order());
            foreach (var (key, tensor) in theirState.Tensors) Assert.Equal(Bits(tensor), Bits(ourState.Tensors[key]));
            for (int i = 0; i < ours.Length; i++) Assert.Equal(Bits(theirs[i]), Bits(ours[i]));
        }
        Assert.Equal(6, fused); // steps 13–15 and 17–19
    }

    private static List<(string Name, Parameter Parameter)> Named(Parameter[] parameters) =>
        parameters.Select((p, i) => ($"p{i}", p)).ToList();

    private static void SetRandomGrads(Parameter[] ours, Parameter[] theirs, int step)
    {
        using var scope = torch.NewDisposeScope();
        for (int i = 0; i < ours.Length; i++)
        {
            var grad = torch.randn(ours[i].shape, generator: new torch.Generator((ulong)(1000 * step + i)));
            SetGrad(ours[i], grad);
            SetGrad(theirs[i], grad);
        }
    }
}
