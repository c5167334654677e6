using FinQLoRA.Adapters;
using FinQLoRA.Models;
using FinQLoRA.Models.Families;
using FinQLoRA.Quantization;
using FinQLoRA.Runtime;
using FinQLoRA.Training;

namespace FinQLoRA.Planning;

/// <summary>
/// GPU memory of a decoder model of any family for inference at batch 1 and for (Q)LoRA training, by component. The
/// tensors are the family's (<see cref="ModelLayout"/>): its projections (fused or not), biases and norms.
/// <para><b>Weights.</b> Embedding and lm_head stay bf16 (bitsandbytes/transformers never quantize them); the seven
/// projections of every layer are bf16 (16), int8 + fp32 SCB per row (8), or packed 4-bit + constants (4: one fp32
/// absmax per 64, or with double quantization one byte per 64 plus fp32 per 256 blocks and the 16/256-entry tables);
/// RMSNorm weights bf16.</para>
/// <para><b>Inference runtime overhead</b>, batch 1, <c>contextTokens</c> tokens (default 512, the length of FinLoRA's
/// classification prompts):
/// CUDA context 0.25 GiB (a CUDA 12 context with lazy module loading plus the cuBLAS handle and workspace; it is
/// device memory every process pays before the first tensor);
/// KV cache 2·L·kv_dim·C·2 bytes (bf16 keys and values of all layers);
/// activations at the peak of one prefill layer, C·2·(2h + 3I) bytes (residual, normed input, gate, up and their
/// product; attention runs fused so no C×C score matrix), and the last token's fp32 logits V·4;
/// quantized layers add a transient: 4-bit dequantizes the largest projection to bf16 (out·in·2), 8-bit holds the
/// int8 activations and int32 accumulator of the largest projection (C·(in + 4·out)).
/// The caching allocator reuses the same blocks every layer at batch 1, so no fragmentation term is added.</para>
/// <para><b>Training</b> (batch B, sequence S, rank R, any set of target projections): adapter parameters
/// P = L·Σ R·(in + out) cost 16 bytes each (fp32 weight, fp32 grad, AdamW m and v);
/// activations saved for backward per token and layer, bf16 unless noted:
/// 2·(h [attention residual] + qdim + 2·kv_dim [q, k, v kept by attention] + qdim [attention output] + h [MLP residual]
/// + 4·I [gate, up, silu(gate), product]) + 8h per block norm [each keeps its fp32 input and normalised output: two for
/// Llama, four for Gemma] + 4·(qdim + kv_dim) for per-head q/k norms (Qwen3, Gemma 3) + 4·heads
/// [attention log-sum-exp], + 2·3I for GELU's written-out tanh form (Gemma), + heads·S·(4 + 2 [+ 2 with a soft-cap]) for
/// attention written out (Gemma 2: the fp32 softmax, its bf16 copy, the soft-cap's tanh), plus per adapted projection 4·in (peft casts the dropped-out input to fp32 and lora_A keeps
/// it) + in [dropout mask, when dropout &gt; 0] + 4·R [lora_A output kept by lora_B]. Frozen quantized projections keep
/// nothing (their backward needs only the weight, which is re-dequantized). Head: only the N = B·targets supervised
/// positions go through the final norm (8h each: fp32 input and normed output) and lm_head. Up to one chunk of rows
/// (<see cref="ChunkedCrossEntropy.RowsPerChunk"/>: 32 MiB of fp32 logits, 65 rows at V = 128,256) that is V·10 per
/// row (bf16 logits, fp32 upcast, fp32 log-softmax kept by the loss); beyond it the loss runs chunk by chunk and holds
/// one chunk's V·12 per row (bf16 logits, fp32 upcast, fp32 log-softmax turned into its gradient, bf16 gradient) plus
/// the bf16 gradient w.r.t. the normed rows, 2h per target. With gradient checkpointing each layer keeps only its input (2h per
/// token) and one layer is recomputed at a time. Backward working memory: one more layer's activations, plus the
/// dequantization transient.</para>
/// <para><b>CPU training</b> (<see cref="MemoryDevice.Cpu"/>) plans the peak RSS of the whole process: the CUDA context
/// is replaced by the measured runtime (<see cref="CpuRuntimeBytes"/>), quantized layers keep reusable per-thread
/// dequantization buffers instead of a transient, and glibc's retained free memory is added
/// (<see cref="CpuAllocatorRetention"/>). Checked against real <c>finqlora train</c> runs by the <c>memory</c> bench.</para>
/// </summary>
public static class MemoryPlanner
{
    public const long CudaContextBytes = 256L * 1024 * 1024;

    /// <summary>
    /// Resident memory of a CPU training process that is not tensors, measured (bench <c>memory</c>):
    /// 149 MiB is the peak RSS of <c>finqlora version</c> (.NET runtime and JIT'ed code, TorchSharp, and the pages of
    /// libtorch touched by its initialisation), and 51 MiB more are paged in by a training step (libtorch's kernels and
    /// autograd engine, the tokenizer's native library, intra-op thread stacks, the trainer's code): stories260K's
    /// 2-step training run peaks at 223 MiB with only 26 MiB of planned tensors (retention included).
    /// </summary>
    public const long CpuRuntimeBytes = 200L * 1024 * 1024;

    /// <summary>
    /// Freed memory that glibc malloc keeps resident on the CPU, as a fraction of the planned activation terms (for
    /// 8-bit, plus the int8 transients every projection of every layer frees in forward).
    /// libtorch's CPU allocator hands every free back to malloc, and glibc raises its mmap threshold (up to 32 MiB) each
    /// time a large mmapped block is freed, so later transients of up to that size (fp32 copies in RMSNorm and LoRA,
    /// dequantized weights, gradients) come from heap arenas whose holes stay resident between the tensors saved for
    /// backward. Measured on random-100M (4-bit, batch 2 × 512, bench <c>memory</c>): peak RSS 1.24 GiB by default,
    /// 878 MiB with <c>MALLOC_MMAP_THRESHOLD_=131072</c> (fixed threshold, freed blocks returned to the OS): 392 MiB
    /// retained for 737 MiB of planned activations, head and backward workspace. It is history-dependent (the same
    /// run measured 1.34–1.37 GiB before the loader trimmed the heap after quantizing), hence the planner's ±15%.
    /// </summary>
    public const double CpuAllocatorRetention = 0.53;
    public const int DefaultContextTokens = 512;

    private const long Bf16 = 2;

    /// <summary>The projections of a layer (the family's) as (kind, in, out).</summary>
    public static IReadOnlyList<(ProjectionKind Kind, long In, long Out)> Projections(ModelConfig c) =>
        [.. c.Family.Projections.Select(k => (k, ModelLayout.Shape(c, k).In, ModelLayout.Shape(c, k).Out))];

    /// <summary>The model's parameters: every tensor its family's layout lists (a tied head once).</summary>
    public static long ParameterCount(ModelConfig c) => ModelLayout.Tensors(c).Sum(t => t.Shape.Aggregate(1L, (a, b) => a * b));

    /// <summary>Weight storage by component; <paramref name="options"/> gives bits, 4-bit type, double quant, block size.</summary>
    public static IReadOnlyList<MemoryComponent> Weights(ModelConfig c, QuantizationOptions options)
    {
        options.Validate();
        long h = c.HiddenSize, L = c.NumLayers, v = c.VocabSize;
        var proj = Projections(c);
        long attention = 0, mlp = 0, constants = 0;
        foreach (var (kind, inF, outF) in proj)
        {
            long n = inF * outF;
            (long data, long consts) = ProjectionBytes(n, outF, options);
            bool isAttention = ModelLayout.IsAttention(kind);
            long bias = ModelLayout.HasBias(c, kind) ? outF * Bf16 : 0;
            if (isAttention) attention += L * (data + bias);
            else mlp += L * (data + bias);
            constants += L * consts;
        }
        var list = new List<MemoryComponent>
        {
            new("embeddings", v * h * Bf16, true, "bf16, never quantized"),
            new("attention", attention, true, Describe(options)),
            new("mlp", mlp, true, Describe(options)),
            new("norms", (L * c.Family.Norms.Sum(n => n.PerHead ? c.HeadDim : h) + h) * Bf16, true, "bf16"),
            new("lm_head", c.TieWordEmbeddings ? 0 : v * h * Bf16, true, c.TieWordEmbeddings ? "tied to embeddings" : "bf16, never quantized"),
        };
        if (options.Bits != 16) list.Add(new("quant_constants", constants, true, options.Bits == 8 ? "fp32 SCB per output row" : "block absmax and code tables"));
        return list;
    }

    /// <summary>Packed data and quantization constants of one projection with n weights and <paramref name="rows"/> output rows.</summary>
    public static (long Data, long Constants) ProjectionBytes(long n, long rows, QuantizationOptions options)
    {
        switch (options.Bits)
        {
            case 16: return (n * Bf16, 0);
            case 8: return (n, rows * 4);
            default:
                long blocks = (n + options.BlockSize - 1) / options.BlockSize;
                long consts = 16 * 4; // quant_map
                if (options.DoubleQuant)
                {
                    long nested = (blocks + QuantizationOptions.NestedBlockSize - 1) / QuantizationOptions.NestedBlockSize;
                    consts += blocks + nested * 4 + 256 * 4 + 4;
                }
                else consts += blocks * 4;
                return ((n + 1) / 2, consts);
        }
    }

    private static string Describe(QuantizationOptions o) => o.Bits switch
    {
        16 => "bf16",
        8 => "int8",
        _ => $"{FourBitTypes.Spellings.Name(o.Kind)} packed 4-bit{(o.DoubleQuant ? ", double-quantized scales" : "")}",
    };

    public static MemoryPlan Inference(ModelConfig c, QuantizationOptions options, string modelName, int contextTokens = DefaultContextTokens)
    {
        if (contextTokens <= 0) throw new UserInputException($"memory: context length {contextTokens} must be positive");
        long C = contextTokens, h = c.HiddenSize, I = c.IntermediateSize, L = c.NumLayers;
        var list = new List<MemoryComponent>(Weights(c, options))
        {
            new("cuda_context", CudaContextBytes, false, "CUDA context, cuBLAS handle and workspace"),
            new("kv_cache", 2 * L * c.KvDim * C * Bf16, false, $"bf16 K and V, {C} tokens"),
            new("activations", C * Bf16 * (2 * h + 3 * I) + c.VocabSize * 4L, false, "peak of one prefill layer + last-token fp32 logits"),
        };
        long transient = QuantTransient(c, options, C);
        if (transient > 0) list.Add(new("dequant_transient", transient, false, options.Bits == 4 ? "largest projection dequantized to bf16" : "int8 activations + int32 accumulator"));
        return new MemoryPlan(modelName, options.Bits, "inference", list);
    }

    private static long QuantTransient(ModelConfig c, QuantizationOptions options, long tokens)
    {
        var proj = Projections(c);
        return options.Bits switch
        {
            4 => proj.Max(p => p.In * p.Out) * Bf16,
            8 => proj.Max(p => tokens * (p.In + 4 * p.Out)),
            _ => 0,
        };
    }

    /// <summary>
    /// The CPU path's matmul buffers: one reusable bf16 and one fp32 buffer per thread, kept for the life of the process
    /// and each sized to the largest weight written into it (<c>Runtime/WeightWorkspace</c>). 4-bit dequantizes into
    /// the bf16 buffer; 8-bit copies CB into the fp32 one for its forward matmul and dequantizes into the bf16 one for
    /// backward, and its forward holds the int8 and fp32 activations and the fp32 accumulator of the largest projection.
    /// Where 16-bit matmuls are widened (<paramref name="widens"/>), weights go to the fp32 buffer instead: a 4-bit one
    /// whole, 8-bit backward's after its bf16 dequantization, a dense one (16-bit projections, the head) in row blocks of
    /// at most <see cref="WeightWorkspace.MaxWidenedElements"/>, and a fused q/k/v or gate/up group whole where it
    /// fits under that cap.
    /// </summary>
    private static IEnumerable<MemoryComponent> CpuQuantWorkspace(ModelConfig c, QuantizationOptions options, long tokens, bool widens)
    {
        var proj = Projections(c);
        long largest = proj.Max(p => p.In * p.Out);
        long fp32 = options.Bits == 8 ? largest : 0;
        long bf16 = options.Bits == 8 || options.Bits == 4 && !widens ? largest : 0;
        if (widens)
        {
            long cap = WeightWorkspace.MaxWidenedElements;
            long head = Math.Min(c.VocabSize * c.HiddenSize, cap);
            long Group(params ProjectionKind[] kinds) => proj.Where(p => kinds.Contains(p.Kind)).Sum(p => p.In * p.Out);
            long fused = new[] { Group(ProjectionKind.Q, ProjectionKind.K, ProjectionKind.V), Group(ProjectionKind.Gate, ProjectionKind.Up) }
                .Where(n => n <= cap).DefaultIfEmpty(0).Max();
            fp32 = Math.Max(fp32, options.Bits switch
            {
                16 => Math.Max(Math.Min(largest, cap), Math.Max(fused, head)),
                4 => Math.Max(largest, Math.Max(fused, head)),
                _ => Math.Max(largest, head),
            });
        }
        if (fp32 + bf16 > 0)
        {
            string what = (fp32 > 0 ? $"fp32 buffer of {fp32:N0} weight elements" : "") + (fp32 > 0 && bf16 > 0 ? " and " : "")
                + (bf16 > 0 ? $"bf16 buffer of {bf16:N0}" : "");
            yield return new("dequant_workspace", fp32 * 4 + bf16 * Bf16, false,
                $"{what}, reused{(widens ? "; 16-bit matmuls widened to fp32" : "")}");
        }
        if (options.Bits == 8)
            yield return new("int8_activations", proj.Max(p => tokens * (p.In * 5 + p.Out * 8)), false, "int8 + fp32 activations and fp32 accumulator of the largest projection");
    }

    /// <summary>Adapter parameter count: L · Σ over targets R·(in + out).</summary>
    public static long AdapterParameters(ModelConfig c, TrainingMemoryOptions t) =>
        PeftAdapterSize.ParameterCount(c, t.Rank, AdapterTargets(c, t), dora: false);

    /// <summary>The family's projections the targets name: on a family that fuses them (Phi-3's qkv_proj and
    /// gate_up_proj) q, k or v names the one qkv_proj and gate or up the one gate_up_proj, which is where PEFT puts an
    /// adapter for such a model (its default targets for Phi-3 are <c>qkv_proj</c>); a projection the family does not
    /// have adds nothing.</summary>
    public static IReadOnlyList<ProjectionKind> AdapterTargets(ModelConfig c, TrainingMemoryOptions t)
    {
        var asked = t.AdapterTargets;
        bool Names(ProjectionKind kind) => asked.Contains(kind) || kind switch
        {
            ProjectionKind.Qkv => asked.Any(k => k is ProjectionKind.Q or ProjectionKind.K or ProjectionKind.V),
            ProjectionKind.GateUp => asked.Any(k => k is ProjectionKind.Gate or ProjectionKind.Up),
            _ => false,
        };
        return [.. c.Family.Projections.Where(Names)];
    }

    private static IEnumerable<(ProjectionKind Kind, long In, long Out)> Targets(ModelConfig c, TrainingMemoryOptions t)
    {
        var targets = AdapterTargets(c, t);
        return Projections(c).Where(p => targets.Contains(p.Kind));
    }

    /// <summary>Bytes kept for backward per token by one decoder layer (formula in the class summary).</summary>
    public static long LayerActivationBytesPerToken(ModelConfig c, TrainingMemoryOptions t)
    {
        long h = c.HiddenSize, I = c.IntermediateSize;
        long bytes = Bf16 * (h + c.QDim + 2 * c.KvDim + c.QDim + h + 4 * I) + 4L * c.NumHeads;
        // every norm of the block keeps its fp32 input and normalised output: two for Llama, four for Gemma's
        // sandwich; the per-head q/k norms (Qwen3, Gemma 3) over every query and key head keep their fp32 input, while
        // their output is the q and k already counted above (RoPE's input) — measured: 4 bytes an element, not 8
        // (bench memory, qwen3-20M and gemma3-20M, on an AMD EPYC with AVX-512 BF16: native bf16 matmuls)
        foreach (var norm in c.Family.Norms)
            bytes += norm.Role switch { NormRole.Query => 4 * c.QDim, NormRole.Key => 4 * c.KvDim, _ => 8 * h };
        // GELU's tanh form is written out: it keeps tanh's output, x/2 and 1 + tanh besides the gate
        if (c.Activation == Activation.GeluTanh) bytes += Bf16 * 3 * I;
        // attention written out (Gemma 2's soft-cap, a query scale other than 1/√head_dim) keeps each query's row of
        // scores over the sequence: fp32 softmax output and its bf16 copy, and the soft-cap's tanh output
        bytes += WrittenOutScoreBytesPerToken(c, t);
        foreach (var p in Targets(c, t))
            bytes += 4 * p.In + (t.LoraDropout > 0 ? p.In : 0) + 4L * t.Rank;
        return bytes;
    }

    /// <summary>The scores written-out attention keeps per token and layer (0 where attention runs fused).</summary>
    public static long WrittenOutScoreBytesPerToken(ModelConfig c, TrainingMemoryOptions t) =>
        ExplicitAttention(c) ? (long)c.NumHeads * t.SeqLen * (4 + Bf16 + (c.AttentionSoftcap is not null ? Bf16 : 0)) : 0;

    /// <summary>Whether attention runs as matmuls and a softmax (<c>SelfAttention.Explicit</c>) rather than fused.</summary>
    public static bool ExplicitAttention(ModelConfig c) =>
        c.AttentionSoftcap is not null || c.QueryPreAttnScalar is double s && s != c.HeadDim;

    /// <summary>Bytes of the final norm, logits and loss for <paramref name="targets"/> supervised rows (formula in the
    /// class summary), with a note saying which way the trainer computes them.</summary>
    public static (long Bytes, string Note) HeadActivations(ModelConfig c, long targets)
    {
        long v = c.VocabSize, h = c.HiddenSize, chunk = ChunkedCrossEntropy.RowsPerChunk(v);
        long norm = targets * 8 * h;
        // soft-capped logits (Gemma 2) go through the model's head whole, never in chunks: besides the bf16 logits,
        // fp32 upcast and log-softmax, the head holds logits / cap, tanh's output (kept for backward) and cap · tanh
        if (c.FinalSoftcap is not null) return (norm + targets * v * 22, $"soft-capped logits and loss of {targets:N0} target tokens, all at once");
        if (targets <= chunk) return (norm + targets * v * 10, $"logits and loss of {targets:N0} target tokens");
        return (norm + chunk * v * 12 + targets * h * Bf16, $"logits of {targets:N0} target tokens, {chunk:N0} at a time; bf16 gradient of their normed rows");
    }

    public static MemoryPlan Training(ModelConfig c, QuantizationOptions options, TrainingMemoryOptions t, string modelName)
    {
        if (t.BatchSize <= 0 || t.SeqLen <= 0 || t.Rank <= 0)
            throw new UserInputException($"memory: batch size {t.BatchSize}, sequence length {t.SeqLen} and rank {t.Rank} must be positive");
        long tokens = (long)t.BatchSize * t.SeqLen, L = c.NumLayers, h = c.HiddenSize;
        long adapters = AdapterParameters(c, t);
        long perLayer = LayerActivationBytesPerToken(c, t) * tokens;
        long saved = t.GradientCheckpointing ? L * tokens * h * Bf16 + perLayer : L * perLayer;
        if (t.TargetTokens <= 0 || t.TargetTokens > t.SeqLen)
            throw new UserInputException($"memory: {t.TargetTokens} target tokens per example must be between 1 and the sequence length {t.SeqLen}");
        long targets = (long)t.BatchSize * t.TargetTokens;
        var (head, headNote) = HeadActivations(c, targets);
        bool cpu = t.Device == MemoryDevice.Cpu;
        var list = new List<MemoryComponent>(Weights(c, options))
        {
            cpu ? new("cpu_runtime", CpuRuntimeBytes, false, "measured RSS of .NET + TorchSharp + libtorch + the CLI, and libtorch code paged in by training")
                : new("cuda_context", CudaContextBytes, false, "CUDA context, cuBLAS handle and workspace"),
            new("adapter_weights", adapters * 4, false, $"{adapters:N0} fp32 LoRA parameters (rank {t.Rank})"),
            new("adapter_grads", adapters * 4, false, "fp32"),
            new("optimizer_state", adapters * 8, false, "AdamW m and v, fp32"),
            new("activations", saved, false, t.GradientCheckpointing ? "layer inputs + one recomputed layer" : "every layer's saved tensors"),
            new("head_activations", head, false, headNote),
            new("backward_workspace", perLayer, false, "gradients of one layer's activations"),
        };
        if (cpu)
        {
            list.AddRange(CpuQuantWorkspace(c, options, tokens, t.Widens));
            long transientBase = list.Where(x => x.Name is "activations" or "head_activations" or "backward_workspace").Sum(x => x.Bytes);
            // written-out attention's score matrices are the same few sizes in every layer, so freed ones are taken
            // again whole rather than leaving holes: measured on a 20M Gemma 2 (bench memory, gemma2-20M, on an AMD EPYC
            // with AVX-512 BF16: native bf16 matmuls) they add what they hold and no retention (+19% planned with it, +6% without)
            long layersHoldingScores = t.GradientCheckpointing ? 2 : L + 1;
            transientBase -= layersHoldingScores * tokens * WrittenOutScoreBytesPerToken(c, t);
            // 8-bit forwards free int8 activations, fp32 copies and accumulators in every projection of every layer
            if (options.Bits == 8) transientBase += c.NumLayers * tokens * Projections(c).Sum(p => p.In * 5 + p.Out * 8);
            list.Add(new("allocator_retention", (long)(transientBase * CpuAllocatorRetention), false,
                $"freed transients glibc malloc keeps resident ({CpuAllocatorRetention:0.##} × activations, measured)"));
        }
        else
        {
            long transient = QuantTransient(c, options, tokens);
            if (transient > 0) list.Add(new("dequant_transient", transient, false, "one projection at a time"));
        }
        return new MemoryPlan(modelName, options.Bits, "training", list);
    }
}
