using FinQLoRA.Data.Tokenization;
using FinQLoRA.Inference;
using FinQLoRA.Inference.Decoding;
using FinQLoRA.Models;
using static TorchSharp.torch;

namespace FinQLoRA.Serving;

/// <summary>
/// The serving engine's forward passes over rows the <see cref="Scheduler"/> has placed in KV slots (vLLM's model
/// runner): a prefill of newcomers' prompts, one chunk of a long prompt, or one decode step of every running row; then
/// each row's next token is picked with its own sampling settings and its event is sent. It owns no rows and no slots,
/// only the tensors of one step, so that the scheduling policy and the numerics can change apart. Masks come from
/// <see cref="AttentionMask"/> alone, the model's one definition of what a query may see. Scheduler thread only.
/// </summary>
internal sealed class ModelRunner(DecoderModel model, ITextTokenizer tokenizer, SlotKvCache cache, AdapterRegistry adapters, IEngineObserver? observer)
{
    // The pool and the model stay the same for the engine's life, so the step is chosen once (at the first decode,
    // under no_grad as every decode runs), not per token.
    private IDecodeStep? _decodeStep;

    /// <summary>One forward over the newcomers' prompts in consecutive slots from <c>group[0].Slot</c>. Row r holds its
    /// first <see cref="EngineRow.CachedTokens"/> positions already (from the prefix cache, or none) and computes the
    /// rest, right-padded to <paramref name="longest"/> tokens: its query c sits at position cached_r + c and sees its
    /// own positions up to there, causally. A generation row's logits are read at its last prompt token; a scoring
    /// row's at the positions before each scored token. Returns the rows that finished (every scoring row).</summary>
    /// <remarks>Row r also writes its padding queries' keys and values, at positions [length_r, cached_r + longest):
    /// past its prompt, inside its own slot (the scheduler keeps cached_r + longest within the slot's capacity), where
    /// no query of this forward looks (the mask hides keys at or past length_r), no block is cached from (blocks end
    /// within the prompt), and a decode step writes position p before any query may see it. So padding never lands
    /// on a position a row uses.</remarks>
    public IReadOnlyList<EngineRow> Prefill(IReadOnlyList<EngineRow> group, int longest)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var device = model.Device;
        int k = group.Count, t = longest, span = 0;
        var flat = new long[k * t];
        var at = new long[k * t];
        var lengthValues = new long[k];
        for (int r = 0; r < k; r++)
        {
            var prompt = group[r].Request.PromptIds;
            int start = group[r].CachedTokens;
            lengthValues[r] = prompt.Length;
            for (int c = 0; c < t; c++)
            {
                flat[r * t + c] = start + c < prompt.Length ? prompt[start + c] : tokenizer.PadId;
                at[r * t + c] = start + c;
            }
            span = Math.Max(span, start + t);
        }
        var ids = tensor(flat, [k, t], device: device);
        var lengths = tensor(lengthValues, device: device);
        var positions = tensor(at, [k, t], device: device);
        var mask = AttentionMask.RightPadded(positions, lengths, span);                               // [k, 1, t, span]
        // rows starting at the same position (no hits, or equal ones) write one block of the slots; else each its own
        if (group.All(r => r.CachedTokens == group[0].CachedTokens)) cache.BeginPrefill(group[0].Slot, k, group[0].CachedTokens);
        else cache.BeginPrefillAt(group[0].Slot, positions, span);
        var generating = Enumerable.Range(0, k).Where(r => !group[r].IsScoring).ToArray();
        var logits = Forward(group, ids, positions, mask, h =>
        {
            for (int r = 0; r < k; r++)
                if (group[r].IsScoring) AddScore(group[r], h.narrow(0, r, 1), group[r].CachedTokens);
            if (generating.Length == 0) return null;
            int g = generating.Length;
            var rows = tensor(generating.Select(r => (long)r).ToArray(), device: device);
            var last = tensor(generating.Select(r => lengthValues[r] - 1 - group[r].CachedTokens).ToArray(), device: device).view(g, 1, 1);
            var hg = h.index_select(0, rows);
            return model.Head(hg.gather(1, last.expand(g, 1, hg.shape[2]))).select(1, 0);          // [g, vocab]
        });
        for (int r = 0; r < k; r++) group[r].Length = (int)lengthValues[r];
        var finished = logits is null ? [] : Sample(generating.Select(r => group[r]).ToList(), logits);
        finished.AddRange(EndScoring(group));
        return finished;
    }

    /// <summary>Prompt positions [<paramref name="start"/>, <paramref name="end"/>) of <paramref name="row"/> into
    /// <paramref name="slot"/>: its queries see the chunks before them and causally their own. Only the last chunk
    /// (<paramref name="end"/> = the prompt's length) samples the row's first token, or ends a scoring row; returns the
    /// rows that finished.</summary>
    public IReadOnlyList<EngineRow> PrefillChunk(EngineRow row, int slot, int start, int end)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var device = model.Device;
        var prompt = row.Request.PromptIds;
        int c = end - start;
        bool last = end == prompt.Length;
        var ids = tensor(prompt[start..end].Select(i => (long)i).ToArray(), [1, c], device: device);
        var positions = AttentionMask.Positions(null, 1, c, start, device);
        var mask = AttentionMask.Build(null, 1, c, start, device);                                    // [1, 1, c, end]
        cache.BeginPrefill(slot, 1, offset: start);
        var logits = Forward([row], ids, positions, mask, h =>
        {
            if (row.IsScoring) AddScore(row, h, start);
            return last && !row.IsScoring ? model.Head(h.narrow(1, c - 1, 1)).select(1, 0) : null;   // [1, vocab]
        });
        if (!last) return [];
        return row.IsScoring ? EndScoring([row]) : Sample([row], logits!);
    }

    /// <summary>Adds to a scoring row's score the log probabilities of its scored tokens that hidden states
    /// <paramref name="h"/> [1, T, hidden] (positions <paramref name="first"/>.. of the row) predict: position p
    /// predicts token p + 1. f32 log_softmax as <c>Evaluation.ChoiceScorer</c>; summed in f64. When the last prompt
    /// position is among them, the log probabilities of the row's <see cref="EngineRequest.ScoreNextTokens"/> are read there.</summary>
    private void AddScore(EngineRow row, Tensor h, int first)
    {
        var prompt = row.Request.PromptIds;
        int last = prompt.Length - 1;
        if (row.Request.ScoreNextTokens is { Count: > 0 } next && last >= first && last < first + h.shape[1])
        {
            var logpLast = model.Head(h.narrow(1, last - first, 1)).reshape(-1).to(ScalarType.Float32).log_softmax(-1);        // [vocab]
            var ids = tensor(next.Select(i => (long)i).ToArray(), device: h.device);
            row.NextTokenLogprobs = logpLast.index_select(0, ids).to(ScalarType.Float64).cpu().data<double>().ToArray();
        }
        int from = Math.Max(first, row.Request.ScoreFrom!.Value - 1), to = Math.Min(first + (int)h.shape[1], last);
        if (to <= from) return;
        var logp = model.Head(h.narrow(1, from - first, to - from)).select(0, 0).to(ScalarType.Float32).log_softmax(-1);    // [m, vocab]
        var targets = tensor(prompt[(from + 1)..(to + 1)].Select(i => (long)i).ToArray(), device: h.device).view(-1, 1);
        row.Score += logp.gather(1, targets).to(ScalarType.Float64).sum().item<double>();
    }

    /// <summary>Sends each scoring row of <paramref name="rows"/> its one (final) event; returns them.</summary>
    private List<EngineRow> EndScoring(IEnumerable<EngineRow> rows)
    {
        var ended = new List<EngineRow>();
        foreach (var row in rows.Where(r => r.IsScoring))
        {
            observer?.Finished(row.Request.Adapter, row.Request.PromptIds.Length, 0);
            row.Channel.Writer.TryWrite(row.Scored());
            ended.Add(row);
        }
        return ended;
    }

    /// <summary>One token for each running row (row i in slot i), fed at its own position through the decode step that
    /// <see cref="DecodeStep.Choose"/> picks for the slot pool (the libtorch step); returns the rows that finished.</summary>
    public IReadOnlyList<EngineRow> Decode(IReadOnlyList<EngineRow> rows)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var device = model.Device;
        int n = rows.Count;
        var lengthValues = rows.Select(r => (long)r.Length).ToArray();
        int span = (int)lengthValues.Max() + 1;
        var feed = tensor(rows.Select(r => (long)r.LastToken).ToArray(), [n, 1], device: device);
        var lengths = tensor(lengthValues, device: device);
        // Row r sees its own positions 0..length[r] (the token fed now included); the rest of the span is padding.
        var mask = AttentionMask.Build(AttentionMask.RightPadding(lengths + 1, span), n, 1, span - 1, device); // [n, 1, 1, span]
        cache.BeginDecode(arange(0, n, ScalarType.Int64, device), lengths, span);
        var logits = WithAdapters(rows, () => (_decodeStep ??= DecodeStep.Choose(model, cache)).Forward(feed, lengths.view(n, 1), mask)).select(1, 0); // [n, vocab]
        foreach (var row in rows) row.Length++;
        return Sample(rows, logits);
    }

    /// <summary>A prefill's layers, then <paramref name="head"/> on the hidden states, with each row's adapter selected.</summary>
    private Tensor? Forward(IReadOnlyList<EngineRow> rows, Tensor ids, Tensor positions, Tensor mask, Func<Tensor, Tensor?> head) =>
        WithAdapters(rows, () => head(model.RunLayers(model.Embed(ids), 0, model.Layers.Count, positions, mask, cache)));

    /// <summary>Runs <paramref name="forward"/> with each row's adapter selected (the head included: it may carry one).</summary>
    private T WithAdapters<T>(IReadOnlyList<EngineRow> rows, Func<T> forward)
    {
        adapters.Select(rows.Select(r => r.Request.Adapter));
        try { return forward(); }
        finally { adapters.ClearSelection(); }
    }

    /// <summary>Picks each row's token from logits [n, vocab] (row i = rows[i]): argmax for a greedy row, else its own
    /// seeded sampler over its request's temperature / top-k / top-p. Sends the events; returns the rows that finished.</summary>
    private List<EngineRow> Sample(IReadOnlyList<EngineRow> rows, Tensor logits)
    {
        var finished = new List<EngineRow>();
        logits = Constrain(rows, logits, finished);
        long[] argmax = logits.argmax(-1).cpu().data<long>().ToArray();
        Tensor? logp = rows.Any(r => r.Request.Sampling.Logprobs is not null) ? logits.log_softmax(-1) : null;
        for (int i = 0; i < rows.Count; i++)
        {
            var row = rows[i];
            if (row.Finished) continue; // failed in Constrain
            int token = row.Greedy ? (int)argmax[i] : (int)row.Sampler!.Next(logits.narrow(0, i, 1)).cpu().item<long>();
            TokenLogprob? chosen = null;
            List<TokenLogprob>? top = null;
            if (row.Request.Sampling.Logprobs is { } k && logp is not null)
            {
                var rowLogp = logp[i];
                int? previous = row.Generated > 0 ? row.LastToken : row.Request.PromptIds[^1];
                chosen = Logprob(previous, token, rowLogp[token].item<float>());
                top = [];
                if (k > 0)
                {
                    var (values, indices) = rowLogp.topk(k);
                    var v = values.cpu().data<float>().ToArray();
                    var ix = indices.cpu().data<long>().ToArray();
                    for (int j = 0; j < k; j++) top.Add(Logprob(previous, (int)ix[j], v[j]));
                }
            }
            var ev = row.Accept(token, chosen, top, observer);
            row.Channel.Writer.TryWrite(ev.IsFinal ? ev with { CachedTokens = row.CachedTokens } : ev);
            if (row.Finished) finished.Add(row);
        }
        return finished;
    }

    /// <summary>Masks each constrained row's logits to the tokens its constraint allows now (−inf elsewhere), so that
    /// argmax and every sampler draw only those. Masks are cached per automaton state on the device; a step copies
    /// the constrained rows' masks into one [k, vocab] tensor and fills them in one op. A row whose constraint allows
    /// no token of this vocabulary fails (its stream ends with the error) and joins <paramref name="finished"/>.</summary>
    private static Tensor Constrain(IReadOnlyList<EngineRow> rows, Tensor logits, List<EngineRow> finished)
    {
        var constrained = new List<int>();
        for (int i = 0; i < rows.Count; i++)
        {
            if (rows[i].Constraint is not { } c) continue;
            if (!c.AnyAllowed(rows[i].ConstraintState))
            {
                rows[i].Fail(new ServingException(ServingErrorKind.InvalidRequest, $"the {c.Spec.Kind.Replace('_', ' ')} cannot be continued with this model's vocabulary"));
                finished.Add(rows[i]);
                continue;
            }
            constrained.Add(i);
        }
        if (constrained.Count == 0) return logits;
        long vocab = logits.shape[1];
        var disallowed = empty([constrained.Count, vocab], ScalarType.Bool, device: logits.device);
        for (int j = 0; j < constrained.Count; j++)
        {
            var row = rows[constrained[j]];
            disallowed[j].copy_(row.Constraint!.DisallowedMask(row.ConstraintState, vocab, logits.device));
        }
        if (constrained.Count == rows.Count) return logits.masked_fill(disallowed, float.NegativeInfinity);
        var index = tensor(constrained.Select(i => (long)i).ToArray(), device: logits.device);
        return logits.index_copy(0, index, logits.index_select(0, index).masked_fill_(disallowed, float.NegativeInfinity));
    }

    /// <summary>A token's text reads as it does after <paramref name="previous"/> (the output's text rule,
    /// <see cref="IncrementalText.After"/>): alone, SentencePiece would read "there" where the output reads " there".
    /// Special tokens are shown: a top alternative may be one, and would read as nothing.</summary>
    private TokenLogprob Logprob(int? previous, int id, float value) => new(id, previous is { } p
        ? IncrementalText.After(tokenizer, p, [id], skipSpecialTokens: false)
        : tokenizer.Decode([id], skipSpecialTokens: false), value);
}
