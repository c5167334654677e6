using TorchSharp;
using TorchSharp.Modules;

namespace FinQLoRA.Training.Optimizers;

/// <summary>
/// The steps each parameter of an elementwise optimizer (AdamW, SGD) has taken, and the choice both make every step:
/// one update over the flat buffers when every parameter has a gradient and all have taken the same number of steps;
/// otherwise (some gradient is null, now or in an earlier step) one per parameter, skipping null gradients, as PyTorch
/// does. Both paths run the same elementwise ops, so they agree bit for bit.
/// </summary>
internal sealed class ParameterStepCounts(int count)
{
    private readonly long[] _steps = new long[count];
    private bool _diverged;

    /// <summary>Whether the last <see cref="Step"/> ran over the flat buffers.</summary>
    public bool LastStepFused { get; private set; }

    /// <param name="flatUpdate">the update over the flat buffers, given the new step count</param>
    /// <param name="update">the update of parameter i, given its gradient and its new step count</param>
    public void Step(FlatParameterBuffers? flat, IReadOnlyList<(string Name, Parameter Parameter)> parameters,
        Action<long> flatUpdate, Action<int, torch.Tensor, long> update)
    {
        LastStepFused = flat is not null && !_diverged && flat.TryBindGradients();
        if (LastStepFused)
        {
            long step = _steps[0] + 1;
            Array.Fill(_steps, step);
            flatUpdate(step);
            return;
        }
        for (int i = 0; i < parameters.Count; i++)
        {
            using var scope = torch.NewDisposeScope();
            if (parameters[i].Parameter.grad is not { } grad) continue;
            update(i, grad, ++_steps[i]);
        }
        _diverged = _steps.Any(s => s != _steps[0]);
    }

    /// <summary>The step count every parameter shares, as a checkpoint records it.</summary>
    public long Common(string optimizer) => _steps.Distinct().Count() > 1
        ? throw new InvalidOperationException($"{optimizer} parameters have taken different step counts ({string.Join(", ", _steps.Distinct())}); a parameter without a gradient was skipped, which this checkpoint format does not record")
        : _steps[0];

    /// <summary>Every parameter at <paramref name="step"/> (a loaded checkpoint).</summary>
    public void Reset(long step)
    {
        Array.Fill(_steps, step);
        _diverged = false;
    }
}
