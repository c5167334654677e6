using TorchSharp;
using static TorchSharp.torch;

namespace FinQLoRA.Adapters;

/// <summary>
/// The LoRA branches of G projections of one input x (attention's q, k, v), added to their bases' outputs, as one
/// autograd node. With the bases' outputs side by side in <c>all</c> [N, ΣOut] (one fused matmul) and plain LoRA
/// adapters of one rank r and scale s (A_i [r, in], B_i [out_i, r], fp32 as PEFT keeps them):
/// <code>
///   x_i = dropout_i(x) in fp32          (one mask per branch, as PEFT's one nn.Dropout per module)
///   u   = [x_1·A_1ᵀ | … | x_G·A_Gᵀ]       [N, G·r]    (one batched product)
///   y   = all + s·u · diag(B_1, …, B_G)ᵀ   in fp32, each y_i cut out and cast to all's dtype
/// </code>
/// The block-diagonal B makes the G second products one matmul whose result lands where the fused base output has
/// the branch's columns; its off-diagonal zeros add exact zeros. Backward, from the G output gradients g:
/// ∂all = [g_1 | … | g_G] (one cat, where the slices' gradients were zero-filled full-size tensors), gz = that in
/// fp32, ∂B_i = (gzᵀ·s·u) block i, du = s·gz·B_bd, ∂A_i = du_iᵀ·x_i, ∂x = Σ m_i⊙(du_i·A_i)/(1−p). The composed path ran
/// a cast, a dropout (bernoulli, fp32 noise), two skinny matmuls, a scale, a promoting add and a cast back per
/// projection, and about thirty ops per projection in backward; it kept an fp32 x and an fp32 noise per projection
/// (8 bytes per element each), this keeps the dropped fp32 inputs and byte masks (5).
/// For bf16 bases on the CPU the two ends run in C# (<see cref="LoraOutputKernel"/>: each y_i added, rounded and
/// written as its own tensor; the output gradients side by side in fp32 and for the bases), and A's stack and B's block
/// diagonal are memory copies (<see cref="LoraBlocks"/>): the same values with a few dispatcher ops instead of a
/// narrow, a cast and a view per branch. The scale s goes onto u (N×G·r values), not onto B. Bases computed one by one come as G tensors, each output's
/// gradient then passing to its base as it is.
/// apply(x, A_1, B_1, …, A_G, B_G, base(s), <see cref="Group"/>): backward returns one entry per argument.
/// </summary>
internal sealed class LoraGroupFunction : autograd.MultiTensorFunction<LoraGroupFunction>
{
    /// <summary>What the node needs besides tensors: each branch's output width, the one scale of every branch, the
    /// dropout, and whether the bases' outputs come as one tensor side by side or one per branch.</summary>
    internal sealed record Group(long[] Widths, double Scaling, double Dropout, bool Dropping, bool SideBySide);

    public override string Name => "LoraGroup";

    /// <param name="x">[.., in] the shared input</param>
    /// <param name="bases">the bases' outputs for x: one [.., ΣOut] tensor side by side in the order of
    /// <paramref name="adapters"/> (a fused matmul), or one [.., out_i] per adapter</param>
    /// <param name="adapters">plain LoRA adapters of equal rank, scale, dropout and dtype</param>
    public static Tensor[] Apply(Tensor x, IReadOnlyList<Tensor> bases, IReadOnlyList<LoraAdapter> adapters, bool dropping)
    {
        var group = new Group([.. adapters.Select(a => a.B.shape[0])], adapters[0].Scaling, adapters[0].Dropout, dropping,
            SideBySide: bases.Count == 1 && adapters.Count > 1);
        var args = new List<object>(2 + 2 * adapters.Count + bases.Count) { x };
        foreach (var a in adapters) { args.Add(a.A); args.Add(a.B); }
        args.AddRange(bases);
        args.Add(group);
        return [.. apply([.. args])];
    }

    public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var x = (Tensor)vars[0];
        var group = (Group)vars[^1];
        int g = group.Widths.Length;
        var bases = vars[(1 + 2 * g)..^1].Cast<Tensor>().ToArray();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        long inFeatures = x.shape[^1];
        var x2 = x.is_contiguous() ? x.view(-1, inFeatures) : x.reshape(-1, inFeatures);
        long n = x2.shape[0];
        var aList = Enumerable.Range(0, g).Select(i => (Tensor)vars[1 + 2 * i]).ToArray();
        var bList = Enumerable.Range(0, g).Select(i => (Tensor)vars[2 + 2 * i]).ToArray();
        var a = g == 1 ? aList[0].unsqueeze(0) : LoraBlocks.Stack(aList);                                // [G, r, in]
        long r = a.shape[1];
        var bd = g == 1 ? bList[0] : LoraBlocks.BlockDiagonal(bList);                                   // [ΣOut, G·r]

        Tensor u, input, mask;
        if (group.Dropping)
        {
            (input, mask) = LoraDropoutMask.Draw(x2, g, group.Dropout);                                 // [G, N, in] each
            u = bmm(input, a.transpose(1, 2));                                                          // [G, N, r]
            u = g == 1 ? u.view(n, r) : u.permute(1, 0, 2).reshape(n, g * r);
        }
        else
        {
            input = x2.to(a.dtype);
            mask = empty(0, ScalarType.Byte);
            u = input.mm(a.view(g * r, inFeatures).t());
        }
        u.mul_(group.Scaling);                                                                          // s·u: [N, G·r]
        var z = u.mm(bd.t());                                                                           // [N, ΣOut] fp32
        List<Tensor> outputs;
        bool kernel = LoraOutputKernel.Applies(bases, z.dtype);
        if (kernel) outputs = [.. LoraOutputKernel.Outputs(z, bases, group.Widths, x.shape[..^1]).Select(o => o.MoveToOuterDisposeScope())];
        else outputs = Composed(z, bases, group, n, x.shape[..^1]);
        // saved tensors must outlive this scope (TorchSharp commits them after forward returns)
        ctx.save_for_backward([input.MoveToOuterDisposeScope(), mask.MoveToOuterDisposeScope(), u.MoveToOuterDisposeScope(),
            a.MoveToOuterDisposeScope(), bd.MoveToOuterDisposeScope()]);
        ctx.save_data("group", group);
        ctx.save_data("x", (x.shape, x.dtype, x.requires_grad));
        ctx.save_data("bases", (bases.Select(b => b.shape).ToArray(), kernel));
        return outputs;
    }

    /// <summary>The outputs by ATen ops (a GPU, other dtypes): the bases added in fp32, each branch cut out and cast.</summary>
    private static List<Tensor> Composed(Tensor z, Tensor[] bases, Group group, long n, long[] leading)
    {
        int g = group.Widths.Length;
        var dtype = bases[0].dtype;
        if (group.SideBySide) z.add_(bases[0].reshape(n, -1)); // fp32 + 16-bit in fp32, as PEFT's result + lora
        var outputs = new List<Tensor>(g);
        long offset = 0;
        for (int i = 0; i < g; i++)
        {
            var zi = g == 1 ? z : z.narrow(1, offset, group.Widths[i]);
            if (!group.SideBySide) zi.add_(bases[i].reshape(n, group.Widths[i]));
            outputs.Add(zi.to(dtype).view([.. leading, group.Widths[i]]).MoveToOuterDisposeScope());
            offset += group.Widths[i];
        }
        return outputs;
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> grad_outputs)
    {
        var saved = ctx.get_saved_variables();
        Tensor input = saved[0], mask = saved[1], u = saved[2], a = saved[3], bd = saved[4];
        var group = (Group)ctx.get_data("group");
        var (xShape, xDtype, xNeedsGrad) = ((long[], ScalarType, bool))ctx.get_data("x");
        var (baseShapes, kernel) = ((long[][], bool))ctx.get_data("bases");
        int g = group.Widths.Length;
        long r = a.shape[1], inFeatures = a.shape[2], n = u.shape[0];
        var grads = new List<Tensor>(2 + 2 * g + baseShapes.Length);
        using var scope = NewDisposeScope();

        Tensor gz;                                                                                      // [N, ΣOut] fp32
        Tensor? gAll = null;                                                                            // the same in the bases' dtype
        if (kernel && grad_outputs.All(go => go.dtype == ScalarType.BFloat16 && go.device_type == DeviceType.CPU))
            (gz, gAll) = LoraOutputKernel.Gradients(grad_outputs, group.Widths, n, group.SideBySide ? baseShapes[0] : null);
        else
        {
            gAll = g == 1 ? grad_outputs[0].reshape(n, group.Widths[0]) : cat(grad_outputs.Select((go, i) => go.reshape(n, group.Widths[i])).ToList(), 1);
            gz = gAll.to(a.dtype);
        }
        var dBd = gz.t().mm(u);                                                                         // [ΣOut, G·r]
        var du = gz.mm(bd).mul_(group.Scaling);                                                         // [N, G·r]
        Tensor dA, dx;
        if (group.Dropping)
        {
            var duBranches = g == 1 ? du.unsqueeze(0) : du.view(n, g, r).permute(1, 0, 2);           // [G, N, r]
            dA = bmm(duBranches.transpose(1, 2), input);                                              // [G, r, in]
            if (xNeedsGrad)
            {
                var dInput = bmm(duBranches, a).mul_(mask);                                           // [G, N, in]
                dx = (g == 1 ? dInput.view(n, inFeatures) : dInput.sum([0L])).mul_(1.0 / (1.0 - group.Dropout));
            }
            else dx = empty(0);
        }
        else
        {
            dA = du.t().mm(input).view(g, r, inFeatures);
            dx = xNeedsGrad ? du.mm(a.view(g * r, inFeatures)) : empty(0);
        }

        grads.Add(xNeedsGrad ? dx.to(xDtype).view(xShape).MoveToOuterDisposeScope() : null!);
        long offset = 0;
        for (int i = 0; i < g; i++)
        {
            grads.Add(dA[i].MoveToOuterDisposeScope());
            // block i of the block-diagonal gradient as one strided view (two narrows were six ATen ops)
            grads.Add((g == 1 ? dBd : dBd.as_strided([group.Widths[i], r], [g * r, 1], offset * g * r + i * r)).MoveToOuterDisposeScope());
            offset += group.Widths[i];
        }
        if (group.SideBySide) grads.Add((gAll!.shape.SequenceEqual(baseShapes[0]) ? gAll : gAll.view(baseShapes[0])).MoveToOuterDisposeScope());
        else for (int i = 0; i < g; i++) grads.Add(grad_outputs[i]);
        grads.Add(null!); // the group record
        return grads;
    }
}
