using FinQLoRA.Runtime;
using TorchSharp;
using TorchSharp.Modules;

namespace FinQLoRA.Training.Optimizers;

/// <summary>
/// One contiguous fp32 buffer for all parameter values and one for all gradients, with every parameter (and, once
/// bound, every <c>.grad</c>) a view of its slice, so that an elementwise optimizer can update all parameters with a
/// handful of ops instead of a handful per parameter (PyTorch's <c>foreach</c>/<c>fused</c> idea). Elementwise ops
/// compute every element independently, so the flat update is bit-identical to the per-tensor one.
/// <para>
/// The parameters are re-pointed with <c>set_</c> at construction (values copied), so everything that holds them
/// (the model, the checkpoint writer) keeps working on the same <see cref="Parameter"/> objects. Gradients are bound
/// lazily by <see cref="TryBindGradients"/>: a parameter keeps a null gradient until autograd gives it one (PyTorch
/// semantics), and after binding autograd's AccumulateGrad adds into the existing view in place (it does whenever a
/// gradient is already defined and grad mode is off, as during backward), so later steps copy nothing.
/// </para>
/// </summary>
internal sealed class FlatParameterBuffers : IDisposable
{
    private readonly Parameter[] _parameters;
    private readonly torch.Tensor[] _valueViews;
    private readonly torch.Tensor[] _gradViews;

    private FlatParameterBuffers(IReadOnlyList<Parameter> parameters)
    {
        _parameters = [.. parameters];
        long total = _parameters.Sum(p => p.numel());
        var device = _parameters[0].device;
        Values = torch.empty(total, torch.ScalarType.Float32, device).DetachFromDisposeScope();
        Grads = torch.zeros(total, torch.ScalarType.Float32, device).DetachFromDisposeScope();
        _valueViews = Views(Values);
        _gradViews = Views(Grads);
        using var noGrad = torch.no_grad();
        for (int i = 0; i < _parameters.Length; i++)
        {
            using var scope = torch.NewDisposeScope();
            _valueViews[i].copy_(_parameters[i]);
            _parameters[i].set_(_valueViews[i]);
        }
    }

    /// <summary>All parameter values, concatenated in construction order.</summary>
    public torch.Tensor Values { get; }

    /// <summary>All gradients, concatenated in construction order (valid after <see cref="TryBindGradients"/>).</summary>
    public torch.Tensor Grads { get; }

    /// <summary>
    /// Flat buffers for the parameters, or null when they cannot share one (different devices; all are fp32 already).
    /// </summary>
    public static FlatParameterBuffers? TryCreate(IReadOnlyList<Parameter> parameters)
    {
        var first = parameters[0];
        bool oneDevice = parameters.All(p => p.device_type == first.device_type && p.device_index == first.device_index);
        return oneDevice ? new FlatParameterBuffers(parameters) : null;
    }

    /// <summary>A view per parameter into <paramref name="flat"/> (a buffer of the total length), shaped like it.</summary>
    public torch.Tensor[] Views(torch.Tensor flat)
    {
        var views = new torch.Tensor[_parameters.Length];
        long offset = 0;
        for (int i = 0; i < _parameters.Length; i++)
        {
            long n = _parameters[i].numel();
            using var scope = torch.NewDisposeScope(); // releases the narrow() in between
            views[i] = flat.narrow(0, offset, n).view(_parameters[i].shape).DetachFromDisposeScope();
            offset += n;
        }
        return views;
    }

    /// <summary>
    /// Makes every parameter's gradient its view of <see cref="Grads"/> (copying a gradient that autograd or a caller
    /// put elsewhere) and returns true; returns false, changing nothing, when some gradient is null or some
    /// parameter no longer lives in <see cref="Values"/> (then the caller must update per tensor).
    /// </summary>
    public bool TryBindGradients()
    {
        using var scope = torch.NewDisposeScope();
        var grads = new torch.Tensor[_parameters.Length];
        for (int i = 0; i < _parameters.Length; i++)
        {
            if (_parameters[i].grad is not { } grad || !SameMemory(_parameters[i], _valueViews[i])) return false;
            grads[i] = grad;
        }
        using var noGrad = torch.no_grad();
        for (int i = 0; i < _parameters.Length; i++)
        {
            if (SameMemory(grads[i], _gradViews[i])) continue;
            _gradViews[i].copy_(grads[i]);
            _parameters[i].grad = _gradViews[i];
        }
        return true;
    }

    /// <summary>True when <paramref name="tensor"/> is exactly the (contiguous) <paramref name="view"/>'s memory.</summary>
    private static bool SameMemory(torch.Tensor tensor, torch.Tensor view) =>
        tensor.is_contiguous() && tensor.shape.SequenceEqual(view.shape) && TensorMemory.DataPointer(tensor) == TensorMemory.DataPointer(view);

    public void Dispose()
    {
        // The parameters and their gradients keep the shared storage alive; only our handles go.
        foreach (var view in _valueViews) view.Dispose();
        foreach (var view in _gradViews) view.Dispose();
        Values.Dispose();
        Grads.Dispose();
    }
}
