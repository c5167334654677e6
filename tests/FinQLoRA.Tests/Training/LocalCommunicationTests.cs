using FinQLoRA.Distributed;
using FinQLoRA.Training.Optimizers;
using TorchSharp;
using static FinQLoRA.Tests.Training.OptimizerTestParameters;
using FinQLoRA.Tests.Support;

namespace FinQLoRA.Tests.Training;

public sealed class LocalCommunicationTests
{
    [Fact]
    public void Compressed_all_reduce_with_one_rank_matches_hand_values_and_keeps_worker_error()
    {
        using var communication = new LocalCommunication();
        using var buffer = torch.tensor(new float[] { 3, -4 });

        // Call 1: x = [3, −4] padded to N = 8 with zeros; ‖x‖ = 5, s = 5/√8 = 1.76776695.
        // C(x) = s·[+1, −1, +1 ×6] (sign(0) = +1); worker_error = x − C(x) = [1.23223305, −2.23223305, −s ×6].
        // Server: y = C(x) has all |yᵢ| = s, so t = ‖y‖/√8 = s and the result is C(x) again.
        communication.CompressedAllReduce(buffer, "w");
        AssertClose([1.7677669529663687, -1.7677669529663687], Values(buffer));
        var errors = communication.SaveCompressionErrors();
        AssertClose([1.2322330470336313, -2.232233047033631, -1.7677669529663687, -1.7677669529663687, -1.7677669529663687, -1.7677669529663687, -1.7677669529663687, -1.7677669529663687],
            Values(errors["w.worker_error"]));
        AssertClose(new double[8], Values(errors["w.server_error"]), 1e-6);
        foreach (var t in errors.Values) t.Dispose();

        // Call 2 with [3, −4] again: x = [3 + 1.2322, −4 − 2.2322, −s ×6] = [4.2322, −6.2322, −1.7678 ×6];
        // ‖x‖ = 8.68921891, s₂ = ‖x‖/√8 = 3.07210281, result s₂·[+1, −1]; the pads' error is −s + s₂ = 1.30433586.
        buffer.copy_(torch.tensor(new float[] { 3, -4 }));
        communication.CompressedAllReduce(buffer, "w");
        AssertClose([3.072102808276069, -3.072102808276069], Values(buffer));
        errors = communication.SaveCompressionErrors();
        AssertClose([1.1601302387575623, -3.1601302387575623, 1.3043358553097002], Values(errors["w.worker_error"]).Take(3).ToArray());
        foreach (var t in errors.Values) t.Dispose();
    }

    [Fact]
    public void Zero_compresses_to_plus_scale_and_keys_are_independent()
    {
        using var communication = new LocalCommunication();
        // A zero buffer: s = 0, every sign is +1, C = 0 — the warm-up call DeepSpeed makes changes nothing.
        using var zeros = torch.zeros(3);
        communication.CompressedAllReduce(zeros, "a");
        Assert.Equal(new float[3], Values(zeros));

        using var other = torch.tensor(new float[] { 0, 2 });
        communication.CompressedAllReduce(other, "b");
        // [0, 2] → s = 2/√8 = 0.70710678; sign(0) = +1, so both entries become +s.
        AssertClose([0.7071067811865476, 0.7071067811865476], Values(other));

        communication.ResetCompressionErrors();
        var errors = communication.SaveCompressionErrors();
        Assert.Equal(["a.server_error", "a.worker_error", "b.server_error", "b.worker_error"], errors.Keys.Order());
        Assert.All(errors.Values, t => Assert.Equal(0.0, TensorAssert.MaxAbs(t)));
        foreach (var t in errors.Values) t.Dispose();
    }

    [Fact]
    public void Agrees_bit_for_bit_with_the_mpi_compressed_all_reducer_at_world_size_one()
    {
        // The multi-rank CompressedAllReducer (Distributed/) run over the one-rank communicator must do the same math,
        // so that a one-process run and any rank of a multi-rank run share one definition of the compression.
        using var local = new LocalCommunication();
        using var reducer = new CompressedAllReducer(new SingleProcessCommunicator());
        var generator = new torch.Generator(5);
        for (int call = 0; call < 4; call++)
        {
            foreach (var (key, size) in new[] { ("a", 13L), ("b", 40L) })
            {
                using var values = torch.randn(size, generator: generator);
                using var ours = values.clone();
                using var theirs = values.clone();
                local.CompressedAllReduce(ours, key);
                reducer.Reduce(theirs, key);
                Assert.Equal(Bits(theirs), Bits(ours));
            }
        }
        var errors = local.SaveCompressionErrors();
        Assert.Equal(Bits(reducer.ErrorBuffers("a").Worker), Bits(errors["a.worker_error"]));
        Assert.Equal(Bits(reducer.ErrorBuffers("b").Server), Bits(errors["b.server_error"]));
        foreach (var t in errors.Values) t.Dispose();
    }

    [Fact]
    public void A_key_cannot_change_its_size()
    {
        using var communication = new LocalCommunication();
        using var small = torch.ones(3);
        using var large = torch.ones(9);
        communication.CompressedAllReduce(small, "k");
        Assert.Throws<ArgumentException>(() => communication.CompressedAllReduce(large, "k"));
    }

    [Fact]
    public void Error_state_round_trips_and_incomplete_state_is_rejected()
    {
        using var first = new LocalCommunication();
        using var second = new LocalCommunication();
        using var a = torch.tensor(new float[] { 1, -2, 3 });
        using var b = torch.tensor(new float[] { 1, -2, 3 });
        first.CompressedAllReduce(a, "k");
        var saved = first.SaveCompressionErrors();
        second.LoadCompressionErrors(saved);

        a.copy_(torch.tensor(new float[] { 0.5f, 0.25f, -1 }));
        b.copy_(torch.tensor(new float[] { 0.5f, 0.25f, -1 }));
        first.CompressedAllReduce(a, "k");
        second.CompressedAllReduce(b, "k");
        Assert.Equal(Bits(a), Bits(b));

        var incomplete = new Dictionary<string, torch.Tensor> { ["k.worker_error"] = saved["k.worker_error"] };
        Assert.Throws<UserInputException>(() => second.LoadCompressionErrors(incomplete));
        foreach (var t in saved.Values) t.Dispose();
    }

    private static void AssertClose(double[] expected, float[] actual, double tolerance = 1e-6)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tolerance * Math.Max(1, Math.Abs(expected[i])), $"[{i}] expected {expected[i]}, got {actual[i]}");
    }
}
