using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FinQLoRA.Models;

/// <summary>
/// A decoder-only causal language model, Hugging Face layout, for every family <see cref="ModelConfig"/> describes
/// (Llama, Mistral, Qwen2/3, Gemma 2/3, Phi-3/4):
/// <code>
///   ids [B, T] ─ embed_tokens [· √hidden] ─▶ h [B, T, hidden] ─ layers[0..L) ─ norm ─ lm_head [soft-cap] ─▶ logits [B, T, vocab] (fp32)
/// </code>
/// Each layer gets its own RoPE (Gemma 3's local and global bases) and mask (causal, or causal within a sliding
/// window), both made once per forward.
/// The pieces are public (<see cref="Embed"/>, <see cref="RunLayers"/>, <see cref="Head"/>) so that pipeline
/// stages can run a contiguous range of layers. Base weights are frozen; trainable parameters come only from
/// adapters wrapped around projections.
/// </summary>
public sealed class DecoderModel : nn.Module
{
    private readonly Parameter embed_tokens;
    private readonly ModuleList<DecoderBlock> layers;
    private readonly RmsNorm norm;
    private readonly nn.Module<Tensor, Tensor>? lm_head; // null when tied to the embeddings
    private readonly RotaryEmbedding[] _ropes;     // the distinct RoPEs, one per (base, scaling)
    private readonly int[] _ropeOfLayer;            // index into _ropes per layer (absolute layer numbers)
    private readonly DecoderBlock[] _layers;

    public ModelConfig Config { get; }
    /// <summary>The dtype activations are computed in (bf16 by default, fp32 for exact reference checks).</summary>
    public ScalarType ComputeDType { get; }
    /// <summary>Recompute each decoder layer in backward instead of keeping its activations (training only).</summary>
    public bool GradientCheckpointing { get; set; }

    public DecoderModel(ModelConfig config, ScalarType computeDType, Tensor embedTokens, IEnumerable<DecoderBlock> decoderLayers,
        RmsNorm finalNorm, nn.Module<Tensor, Tensor>? lmHead, int firstLayer = 0) : base(nameof(DecoderModel))
    {
        FirstLayer = firstLayer;
        Config = config;
        ComputeDType = computeDType;
        embed_tokens = new Parameter(embedTokens, requires_grad: false);
        _layers = decoderLayers.ToArray();
        layers = new ModuleList<DecoderBlock>(_layers);
        norm = finalNorm;
        lm_head = lmHead;
        var ropes = Enumerable.Range(0, config.NumLayers).Select(config.RopeOf).ToList();
        var distinct = ropes.Distinct().ToList();
        _ropes = distinct.Select(r => new RotaryEmbedding(r.Theta, r.Scaling, config.RotaryDim)).ToArray();
        _ropeOfLayer = ropes.Select(r => distinct.IndexOf(r)).ToArray();
        RegisterComponents();
    }

    public IReadOnlyList<DecoderBlock> Layers => _layers;
    /// <summary>The model's layer number of <see cref="Layers"/>[0] (a pipeline stage holds a range of them).</summary>
    public int FirstLayer { get; }
    public Tensor EmbedTokens => embed_tokens;
    public nn.Module<Tensor, Tensor>? LmHead => lm_head;
    public RmsNorm FinalNorm => norm;
    public Device Device => embed_tokens.device;

    /// <summary>[B, T] ids → [B, T, hidden] in the compute dtype.</summary>
    public Tensor Embed(Tensor ids)
    {
        using var scope = NewDisposeScope();
        var flat = embed_tokens.index_select(0, ids.reshape(-1));
        var h = flat.view(ids.shape[0], ids.shape[1], -1);
        h = h.dtype == ComputeDType ? h : h.to(ComputeDType);
        // Gemma: the normaliser √hidden is a tensor of the hidden dtype in transformers, so it is rounded to it first
        if (Config.ScaleEmbeddings) h = h * tensor(Math.Sqrt(Config.HiddenSize), ComputeDType, h.device);
        return h.MoveToOuterDisposeScope();
    }

    /// <summary>Runs layers [from, to) (counted from <see cref="FirstLayer"/>) on hidden states h [B, T, hidden];
    /// positions are those of h's tokens.</summary>
    public Tensor RunLayers(Tensor h, int from, int to, Tensor positions, Tensor mask, IKvCache? cache)
    {
        using var scope = NewDisposeScope();
        // the layers of [from, to) share a RoPE and a mask per distinct base and window: made once here
        var cosSin = new (Tensor Cos, Tensor Sin)?[_ropes.Length];
        var masks = new Dictionary<int, Tensor>();
        var m = AttentionMask.To(mask, ComputeDType); // still known as plain causal where it was
        (Tensor Cos, Tensor Sin) RopeOf(int layer) => cosSin[_ropeOfLayer[layer]] ??= _ropes[_ropeOfLayer[layer]].CosSin(positions, ComputeDType);
        Tensor MaskOf(int layer) => Config.WindowOf(layer) is int w
            ? masks.TryGetValue(w, out var windowed) ? windowed : masks[w] = AttentionMask.SlidingWindow(m, w)
            : m;
        // A checkpointed layer is an autograd function whose only tensor input is h; with a frozen embedding h needs no
        // grad, the function's output would then have no grad_fn and the adapters inside would get no gradients
        // (PyTorch's reentrant checkpoint has the same trap; HF answers it with enable_input_require_grads).
        if (GradientCheckpointing && is_grad_enabled() && cache == null && !h.requires_grad)
            h = h.detach().requires_grad_(true);
        for (int i = from; i < to; i++)
        {
            var (cos, sin) = RopeOf(FirstLayer + i);
            var layerMask = MaskOf(FirstLayer + i);
            var layer = _layers[i];
            // The last layer is not checkpointed: backward needs its activations first, so recomputing them would rebuild
            // what the forward has just made (a layer's forward, ~3 % of a step), and one layer's activations are held
            // at the start of backward either way.
            h = GradientCheckpointing && is_grad_enabled() && cache == null && i < to - 1
                ? LayerCheckpoint.Run(layer, h, cos, sin, layerMask)
                : layer.Forward(h, cos, sin, layerMask, cache);
        }
        return h.MoveToOuterDisposeScope();
    }

    /// <summary>Final norm and output projection: [B, T, hidden] → fp32 logits [B, T, vocab].</summary>
    public Tensor Head(Tensor h)
    {
        using var scope = NewDisposeScope();
        var n = norm.forward(h);
        var logits = lm_head != null ? lm_head.forward(n) : DenseLinear.Multiply(n, embed_tokens);
        logits = logits.dtype == ScalarType.Float32 ? logits : logits.to(ScalarType.Float32);
        if (Config.FinalSoftcap is double cap) logits = (logits / cap).tanh() * cap;
        return logits.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The output projection's weight [vocab, hidden] in <paramref name="dtype"/> when it is a frozen dense matrix (the
    /// tied embeddings or a <see cref="DenseLinear"/> lm_head), for a loss that projects rows itself
    /// (<c>ChunkedCrossEntropy</c>); the same values <see cref="Head"/> multiplies by. Null for any other head (an adapter
    /// around it, or a quantized one) and where logits are soft-capped: such a loss then goes through <see cref="Head"/>.
    /// </summary>
    public Tensor? DenseOutputWeight(ScalarType dtype) => Config.FinalSoftcap is not null ? null : lm_head switch
    {
        null => embed_tokens.to(dtype),
        DenseLinear dense => dense.DequantizedWeight(dtype),
        _ => null,
    };

    /// <summary>
    /// Full forward. <paramref name="padMask"/> [B, past + T] marks real tokens (1) and left padding (0);
    /// null means no padding. With a cache, keys/values are appended and the cache advanced by T.
    /// With <paramref name="lastOnly"/>, only the last position's logits are computed ([B, 1, vocab]).
    /// Always libtorch: a generation loop that wants the managed single-token step chooses it
    /// (<c>Inference.Decoding.DecodeStep</c>).
    /// </summary>
    public Tensor Forward(Tensor ids, Tensor? padMask = null, KvCache? cache = null, bool lastOnly = false)
    {
        using var scope = NewDisposeScope();
        long b = ids.shape[0], t = ids.shape[1];
        long past = cache?.Length ?? 0;
        var positions = AttentionMask.Positions(padMask, b, t, past, ids.device);
        var mask = AttentionMask.Build(padMask, b, t, past, ids.device);
        return Forward(ids, positions, mask, cache, lastOnly).MoveToOuterDisposeScope();
    }

    /// <summary>The forward with positions [B, T] and the additive mask [B, 1, T, past + T] made by the caller: a
    /// decode loop keeps both from step to step (a view of one mask, positions plus one) instead of rebuilding them
    /// from the padding mask every token.</summary>
    public Tensor Forward(Tensor ids, Tensor positions, Tensor mask, KvCache? cache, bool lastOnly)
    {
        var logits = ForwardWithoutAdvancing(ids, positions, mask, cache, lastOnly);
        cache?.Advance((int)ids.shape[1]);
        return logits;
    }

    /// <summary>The forward over any <see cref="IKvCache"/>, which is left where it stands: keys and values go where
    /// the cache's owner has placed it (the server's slot pool moves each slot itself; <see cref="KvCache"/>'s owner is
    /// the forward above, which advances it).</summary>
    public Tensor ForwardWithoutAdvancing(Tensor ids, Tensor positions, Tensor mask, IKvCache? cache, bool lastOnly)
    {
        using var scope = NewDisposeScope();
        long t = ids.shape[1];
        var h = RunLayers(Embed(ids), 0, _layers.Length, positions, mask, cache);
        if (lastOnly) h = h.narrow(1, t - 1, 1);
        return Head(h).MoveToOuterDisposeScope();
    }

    /// <summary>Hidden states after the last decoder layer, before the final norm ([B, T, hidden]), for a loss that
    /// projects only the positions it needs onto the vocabulary (see <see cref="Head"/>).</summary>
    public Tensor Hidden(Tensor ids, Tensor? padMask = null)
    {
        using var scope = NewDisposeScope();
        long b = ids.shape[0], t = ids.shape[1];
        var positions = AttentionMask.Positions(padMask, b, t, 0, ids.device);
        var mask = AttentionMask.Build(padMask, b, t, 0, ids.device);
        return RunLayers(Embed(ids), 0, _layers.Length, positions, mask, null).MoveToOuterDisposeScope();
    }

    /// <summary><see cref="Hidden(Tensor, Tensor?)"/> for packed rows: explicit positions [B, T] (each example's own)
    /// and an additive mask [B, 1, T, T] (block-diagonal causal, <see cref="AttentionMask.Packed"/>).</summary>
    public Tensor Hidden(Tensor ids, Tensor positions, Tensor mask) =>
        RunLayers(Embed(ids), 0, _layers.Length, positions, mask, null);

    /// <summary>(trainable, total) parameter counts, counting quantized weights by their logical size.</summary>
    public (long Trainable, long Total) CountParameters()
    {
        long trainable = 0, total = 0;
        foreach (var (_, p) in named_parameters())
        {
            total += p.numel();
            if (p.requires_grad) trainable += p.numel();
        }
        foreach (var module in modules().OfType<IQuantizedParameterCount>())
            total += module.LogicalParameterCount;
        return (trainable, total);
    }
}
