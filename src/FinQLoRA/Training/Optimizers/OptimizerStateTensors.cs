using TorchSharp;
using TorchSharp.Modules;

namespace FinQLoRA.Training.Optimizers;

/// <summary>Shared checks and copies for optimizer state tensors (validation of parameters, loading by name).</summary>
internal static class OptimizerStateTensors
{
    /// <summary>Rejects empty lists, duplicate names and non-fp32 parameters (adapter parameters are trained in fp32).</summary>
    public static IReadOnlyList<(string Name, Parameter Parameter)> Validate(IEnumerable<(string Name, Parameter Parameter)> parameters)
    {
        var list = parameters.ToList();
        if (list.Count == 0) throw new ArgumentException("an optimizer needs at least one trainable parameter", nameof(parameters));
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, parameter) in list)
        {
            if (!seen.Add(name)) throw new ArgumentException($"parameter name '{name}' appears twice; optimizer state is keyed by name", nameof(parameters));
            if (parameter.dtype != torch.ScalarType.Float32)
                throw new ArgumentException($"parameter '{name}' is {parameter.dtype}; trainable adapter parameters must be float32", nameof(parameters));
        }
        return list;
    }

    /// <summary>A zero tensor shaped like <paramref name="like"/> that lives outside every dispose scope.</summary>
    public static torch.Tensor ZerosLike(torch.Tensor like) => torch.zeros_like(like).DetachFromDisposeScope();

    /// <summary>A copy of <paramref name="source"/> for a checkpoint, outside every dispose scope.</summary>
    public static torch.Tensor Snapshot(torch.Tensor source) => source.detach().clone().DetachFromDisposeScope();

    /// <summary>Copies <c>state[key]</c> into <paramref name="target"/>, checking that it exists and has the right shape.</summary>
    public static void LoadInto(IReadOnlyDictionary<string, torch.Tensor> state, string key, torch.Tensor target)
    {
        if (!state.TryGetValue(key, out var source))
            throw new UserInputException($"optimizer state has no tensor '{key}': the checkpoint was written for other adapter parameters or by another optimizer; resume with the same adapter config and optimizer");
        if (!source.shape.SequenceEqual(target.shape))
            throw new UserInputException($"optimizer state '{key}' has shape [{string.Join(", ", source.shape)}], expected [{string.Join(", ", target.shape)}]: the checkpoint was written for another adapter rank or model; resume with the same adapter config");
        using var noGrad = torch.no_grad();
        target.copy_(source);
    }

    /// <summary>Checkpoint copies of per-parameter states, each kept as <c>{parameter name}.{suffix}</c> (PyTorch's
    /// state names: <c>exp_avg</c>, <c>momentum_buffer</c>, ...); <c>states[k][i]</c> belongs to parameter i.</summary>
    public static Dictionary<string, torch.Tensor> Snapshots(IReadOnlyList<(string Name, Parameter Parameter)> parameters,
        params (string Suffix, torch.Tensor[] States)[] states)
    {
        var tensors = new Dictionary<string, torch.Tensor>();
        foreach (var (suffix, perParameter) in states)
            for (int i = 0; i < perParameter.Length; i++)
                tensors[parameters[i].Name + "." + suffix] = Snapshot(perParameter[i]);
        return tensors;
    }

    /// <summary>The inverse of <see cref="Snapshots"/>: each state loaded from its <c>{parameter name}.{suffix}</c>.</summary>
    public static void LoadAll(IReadOnlyDictionary<string, torch.Tensor> state, IReadOnlyList<(string Name, Parameter Parameter)> parameters,
        params (string Suffix, torch.Tensor[] States)[] states)
    {
        foreach (var (suffix, perParameter) in states)
            for (int i = 0; i < perParameter.Length; i++)
                LoadInto(state, parameters[i].Name + "." + suffix, perParameter[i]);
    }

    public static T ScalarsAs<T>(OptimizerScalarState scalars, string optimizer) where T : OptimizerScalarState =>
        scalars as T ?? throw new UserInputException($"optimizer state holds {scalars.GetType().Name} but the run uses {optimizer}; resume with the optimizer the checkpoint was written with");
}
