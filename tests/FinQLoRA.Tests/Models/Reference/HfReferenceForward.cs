using System.Text.Json.Nodes;
using FinQLoRA.Formats.Checkpoints;
using static TorchSharp.torch;

namespace FinQLoRA.Tests.Models.Reference;

/// <summary>
/// A test-only forward of a Hugging Face checkpoint written from transformers' modeling code of each family
/// (modeling_llama / mistral / qwen2 / qwen3 / gemma2 / gemma3 / phi3.py) in plain TorchSharp operations, reading
/// config.json as JSON and the tensors by their Hugging Face names — none of FinQLoRA's model classes, so that
/// agreeing with it checks them. Eager attention with an explicit additive mask (the dtype's minimum where masked, the
/// sliding window as masking_utils' <c>kv_idx &gt; q_idx − sliding_window</c>), one unpadded sequence at positions
/// 0..T−1. Slow and simple on purpose; for tiny models only.
/// </summary>
public sealed class HfReferenceForward : IDisposable
{
    private readonly Dictionary<string, Tensor> _w = new();

    public HfArchitecture Arch { get; }

    /// <param name="change">an edit of the architecture read (to show that a switch matters), or null</param>
    public HfReferenceForward(string folder, Func<HfArchitecture, HfArchitecture>? change = null)
    {
        var arch = HfArchitecture.Read((JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "config.json")))!);
        Arch = change is null ? arch : change(arch);
        using var file = new SafetensorsFile(Path.Combine(folder, "model.safetensors"));
        foreach (var e in file.Entries) _w[e.Name] = file.Read(e.Name);
    }

    public void Dispose()
    {
        foreach (var w in _w.Values) w.Dispose();
        _w.Clear();
    }

    /// <summary>Logits [1, T, vocab] (fp32) of <paramref name="ids"/>; call inside a dispose scope.</summary>
    public Tensor Logits(long[] ids)
    {
        var a = Arch;
        long t = ids.Length;
        var h = W("model.embed_tokens.weight").index_select(0, tensor(ids)).unsqueeze(0);  // [1, T, hidden]
        // Gemma: normalizer = torch.tensor(hidden_size ** 0.5, dtype=hidden_states.dtype)
        if (a.ScaleEmbeddings) h = h * tensor(Math.Sqrt(a.Hidden), h.dtype);

        // one RotaryEmbedding for the model (Gemma 3: a second, local one for the sliding layers, default RoPE)
        var (globalFreq, globalScale) = HfRope.Init(a, a.RopeTheta, a.RopeScaling, t);
        var global = HfRope.CosSin(globalFreq, globalScale, t);
        var local = a.LocalRopeTheta is double localTheta ? HfRope.CosSin(HfRope.Init(a, localTheta, null, t).InvFreq, 1.0, t) : global;

        var q = arange(t).view(t, 1);
        var k = arange(t).view(1, t);
        var causal = k.le(q);
        var windowed = a.SlidingWindow is int window ? causal.logical_and(k.gt(q - window)) : causal;
        Tensor Additive(Tensor visible) => zeros(t, t).masked_fill(visible.logical_not(), float.MinValue).view(1, 1, t, t);
        var fullMask = Additive(causal);
        var slidingMask = Additive(windowed);

        for (int i = 0; i < a.Layers; i++)
        {
            string p = $"model.layers.{i}.";
            bool sliding = a.SlidingLayers[i];
            var (cos, sin) = sliding ? local : global;
            var residual = h;
            var x = Norm(h, p + "input_layernorm.weight");
            x = Attention(x, p + "self_attn.", cos, sin, sliding ? slidingMask : fullMask);
            if (a.SandwichNorms) x = Norm(x, p + "post_attention_layernorm.weight");
            h = residual + x;
            residual = h;
            x = Norm(h, p + (a.SandwichNorms ? "pre_feedforward_layernorm.weight" : "post_attention_layernorm.weight"));
            x = Mlp(x, p + "mlp.");
            if (a.SandwichNorms) x = Norm(x, p + "post_feedforward_layernorm.weight");
            h = residual + x;
        }
        h = Norm(h, "model.norm.weight");
        var logits = Linear(h, a.TiedHead ? W("model.embed_tokens.weight") : W("lm_head.weight"), null);
        if (a.FinalSoftcap is double cap) logits = (logits / cap).tanh() * cap;
        return logits.to(ScalarType.Float32);
    }

    private Tensor Attention(Tensor x, string p, Tensor cos, Tensor sin, Tensor mask)
    {
        var a = Arch;
        long t = x.shape[1];
        Tensor qs, ks, vs;
        if (a.Fused)
        {
            // Phi3Attention: qkv = qkv_proj(x); q, k, v by position along the last dimension
            var qkv = Linear(x, W(p + "qkv_proj.weight"), null);
            int qPos = a.Heads * a.HeadDim, kv = a.KvHeads * a.HeadDim;
            qs = qkv.narrow(-1, 0, qPos);
            ks = qkv.narrow(-1, qPos, kv);
            vs = qkv.narrow(-1, qPos + kv, kv);
        }
        else
        {
            qs = Linear(x, W(p + "q_proj.weight"), a.QkvBias ? W(p + "q_proj.bias") : null);
            ks = Linear(x, W(p + "k_proj.weight"), a.QkvBias ? W(p + "k_proj.bias") : null);
            vs = Linear(x, W(p + "v_proj.weight"), a.QkvBias ? W(p + "v_proj.bias") : null);
        }
        // view(*input_shape, -1, head_dim): the q/k norms act on the last dimension, before or after the transpose alike
        qs = qs.view(1, t, a.Heads, a.HeadDim);
        ks = ks.view(1, t, a.KvHeads, a.HeadDim);
        vs = vs.view(1, t, a.KvHeads, a.HeadDim).transpose(1, 2);
        if (a.QkNorm)
        {
            qs = Norm(qs, p + "q_norm.weight");
            ks = Norm(ks, p + "k_norm.weight");
        }
        qs = qs.transpose(1, 2);
        ks = ks.transpose(1, 2);
        (qs, ks) = (Rotate(qs, cos, sin), Rotate(ks, cos, sin));

        // eager_attention_forward
        int groups = a.Heads / a.KvHeads;
        ks = RepeatKv(ks, groups);
        vs = RepeatKv(vs, groups);
        var scores = qs.matmul(ks.transpose(2, 3)) * a.Scaling;
        if (a.AttentionSoftcap is double cap) scores = (scores / cap).tanh() * cap;
        scores = scores + mask;
        var probs = scores.softmax(-1, ScalarType.Float32).to(qs.dtype);
        var output = probs.matmul(vs).transpose(1, 2).reshape(1, t, a.Heads * a.HeadDim);
        return Linear(output, W(p + "o_proj.weight"), a.OBias ? W(p + "o_proj.bias") : null);
    }

    private Tensor Mlp(Tensor x, string p)
    {
        var a = Arch;
        if (a.Fused)
        {
            // Phi3MLP: gate, up = gate_up_proj(x).chunk(2, dim=-1); down_proj(up * act(gate))
            var gateUp = Linear(x, W(p + "gate_up_proj.weight"), null);
            var halves = gateUp.chunk(2, -1);
            return Linear(halves[1] * Act(halves[0]), W(p + "down_proj.weight"), null);
        }
        Tensor? B(string name) => a.MlpBias ? W(p + name + ".bias") : null;
        var gate = Linear(x, W(p + "gate_proj.weight"), B("gate_proj"));
        var up = Linear(x, W(p + "up_proj.weight"), B("up_proj"));
        return Linear(Act(gate) * up, W(p + "down_proj.weight"), B("down_proj"));
    }

    private Tensor Act(Tensor x) => Arch.Activation switch
    {
        "silu" => x * x.sigmoid(),
        // GELU's tanh approximation (gelu_pytorch_tanh): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
        "gelu_pytorch_tanh" or "gelu_tanh" => 0.5 * x * (1 + (Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x.pow(3))).tanh()),
        var other => throw new NotSupportedException($"activation '{other}' is not in the reference"),
    };

    /// <summary>LlamaRMSNorm (weight · normalised x in the input dtype) or GemmaRMSNorm (fp32, (1 + w), cast back).</summary>
    private Tensor Norm(Tensor x, string weight)
    {
        var w = W(weight);
        var xf = x.to(ScalarType.Float32);
        var normed = xf * (xf.pow(2).mean([-1], keepdim: true) + Arch.Eps).rsqrt();
        return Arch.GemmaNorm
            ? (normed * (1.0 + w.to(ScalarType.Float32))).to(x.dtype)
            : w * normed.to(x.dtype);
    }

    /// <summary>apply_rotary_pos_emb with Phi's partial rotary: the first cos.shape[-1] dimensions are rotated
    /// (rotate_half: cat(−x2, x1)), the rest pass.</summary>
    private static Tensor Rotate(Tensor x, Tensor cos, Tensor sin)
    {
        long rot = cos.shape[^1], d = x.shape[^1];
        var c = cos.to(x.dtype).view(1, 1, cos.shape[0], rot);
        var s = sin.to(x.dtype).view(1, 1, sin.shape[0], rot);
        var xr = x.narrow(-1, 0, rot);
        var half = rot / 2;
        var rotated = cat([-xr.narrow(-1, half, half), xr.narrow(-1, 0, half)], -1);
        var embedded = xr * c + rotated * s;
        return rot == d ? embedded : cat([embedded, x.narrow(-1, rot, d - rot)], -1);
    }

    private static Tensor RepeatKv(Tensor x, int groups)
    {
        if (groups == 1) return x;
        long b = x.shape[0], n = x.shape[1], t = x.shape[2], d = x.shape[3];
        return x.unsqueeze(2).expand(b, n, groups, t, d).reshape(b, n * groups, t, d);
    }

    private static Tensor Linear(Tensor x, Tensor w, Tensor? b)
    {
        var y = x.matmul(w.t());
        return b is null ? y : y + b;
    }

    private Tensor W(string name) => _w.TryGetValue(name, out var w) ? w
        : throw new KeyNotFoundException($"the reference forward needs '{name}', which the checkpoint lacks");
}
