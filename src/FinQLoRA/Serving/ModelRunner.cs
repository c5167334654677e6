using FinQLoRA.Data.Tokenization;
using FinQLoRA.Inference;
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
internal sealed class ModelRunner(DecoderModel model, ITextTokenizer tokenizer, IStepForward layers, Residency.AdapterResidency adapters, IEngineObserver? observer)
{
    /// <summary>One forward over the newcomers' prompts in consecutive slots from <c>group[0].Slot</c>. Row r holds its
    /// first <see cref="EngineRow.CachedTokens"/> positions already (from the prefix cache, or none) and computes the
    /// rest, right-padded to <paramref name="longest"/> tokens: its query c sits at slot position cached_r + c and sees
    /// its own positions up to there, causally (a scoring row's branch tokens follow the prompt at their own RoPE
    /// positions and see the prompt and their branch only: <see cref="PrefillLayout"/>). A generation row's logits are
    /// read at its last prompt token; a scoring row's at the positions before each scored token. Returns the rows that
    /// finished (every scoring row).</summary>
    /// <remarks>Row r also writes its padding queries' keys and values, at positions [length_r + branch tokens_r, cached_r + longest):
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
        var ids = new long[k * t];
        var rope = new long[k * t];
        var at = new long[k * t];
        var below = new long[k * t];
        var segmentStart = new long[k * t];
        var segmentEnd = new long[k * t];
        var layouts = new PrefillLayout[k];
        var lengthValues = new long[k];
        for (int r = 0; r < k; r++)
        {
            var prompt = group[r].Request.PromptIds;
            int start = group[r].CachedTokens;
            lengthValues[r] = prompt.Length;
            layouts[r] = new PrefillLayout(group[r].Request, start, prompt.Length);
            layouts[r].Fill(r, t, tokenizer.PadId, ids, rope, below, segmentStart, segmentEnd);
            for (int c = 0; c < t; c++) at[r * t + c] = start + c;
            span = Math.Max(span, start + t);
        }
        var positions = tensor(at, [k, t], device: device);
        var mask = AttentionMask.BelowOrWithin(tensor(below, [k, t], device: device), tensor(segmentStart, [k, t], device: device),
            tensor(segmentEnd, [k, t], device: device), span);                                           // [k, 1, t, span]
        // rows starting at the same position (no hits, or equal ones) write one block of the slots; else each its own
        CacheWrite write = group.All(r => r.CachedTokens == group[0].CachedTokens)
            ? new CacheWrite.Prefill(group[0].Slot, group[0].CachedTokens)
            : new CacheWrite.PrefillAt(group[0].Slot, positions, span);
        var generating = Enumerable.Range(0, k).Where(r => !group[r].IsScoring).ToArray();
        var logits = Forward(group, tensor(ids, [k, t], device: device), tensor(rope, [k, t], device: device), mask, write, h =>
        {
            for (int r = 0; r < k; r++)
                if (group[r].IsScoring) AddScore(group[r], h.narrow(0, r, 1), layouts[r]);
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
    /// (<paramref name="end"/> = the prompt's length) samples the row's first token, or ends a scoring row (its branches,
    /// if any, fed after the prompt in this chunk); returns the rows that finished.</summary>
    public IReadOnlyList<EngineRow> PrefillChunk(EngineRow row, int slot, int start, int end)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var device = model.Device;
        var layout = new PrefillLayout(row.Request, start, end);
        int c = layout.Count;
        bool last = end == row.Request.PromptIds.Length;
        var (ids, rope, below, segmentStart, segmentEnd) = (new long[c], new long[c], new long[c], new long[c], new long[c]);
        layout.Fill(0, c, tokenizer.PadId, ids, rope, below, segmentStart, segmentEnd);
        var mask = AttentionMask.BelowOrWithin(tensor(below, [1, c], device: device), tensor(segmentStart, [1, c], device: device),
            tensor(segmentEnd, [1, c], device: device), start + c);                                        // [1, 1, c, start + c]
        var logits = Forward([row], tensor(ids, [1, c], device: device), tensor(rope, [1, c], device: device), mask, new CacheWrite.Prefill(slot, start), h =>
        {
            if (row.IsScoring) AddScore(row, h, layout);
            return last && !row.IsScoring ? model.Head(h.narrow(1, end - start - 1, 1)).select(1, 0) : null;   // [1, vocab]
        });
        if (!last) return [];
        return row.IsScoring ? EndScoring([row]) : Sample([row], logits!);
    }

    /// <summary>Adds to a scoring row's score the log probabilities of its scored prompt tokens that hidden states
    /// <paramref name="h"/> [1, T, hidden] (laid out by <paramref name="layout"/>) predict: position p predicts token
    /// p + 1. When the layout holds the row's branches, each branch's log-likelihood is read too: its first token
    /// from the prompt's last position, each later one from the branch's own token before it. f32 log_softmax as
    /// <c>Evaluation.ChoiceScorer</c>; summed in f64.</summary>
    private void AddScore(EngineRow row, Tensor h, PrefillLayout layout)
    {
        var prompt = row.Request.PromptIds;
        int first = layout.Start, last = prompt.Length - 1;
        int from = Math.Max(first, row.Request.ScoreFrom!.Value - 1), to = Math.Min(first + layout.Count, last);
        if (to > from)
            row.Score += LogProbabilities(h, Enumerable.Range(from - first, to - from).ToArray(), prompt[(from + 1)..(to + 1)]).Sum();
        if (layout.BranchFirst.Length == 0) return;
        var at = new List<int>();
        var targets = new List<int>();
        var owner = new List<int>();
        for (int b = 0; b < layout.BranchFirst.Length; b++)
        {
            var branch = row.Request.ScoreBranches[b];
            for (int j = 0; j < branch.Length; j++)
            {
                at.Add(j == 0 ? last - first : layout.BranchFirst[b] + j - 1);
                targets.Add(branch[j]);
                owner.Add(b);
            }
        }
        var logp = LogProbabilities(h, [.. at], [.. targets]);
        row.BranchScores = new double[layout.BranchFirst.Length];
        for (int i = 0; i < logp.Length; i++) row.BranchScores[owner[i]] += logp[i];
    }

    /// <summary>log p(<paramref name="targets"/>[i]) from the hidden state at index <paramref name="at"/>[i] of
    /// <paramref name="h"/> [1, T, hidden]: one head over the gathered positions, f32 log_softmax.</summary>
    private double[] LogProbabilities(Tensor h, int[] at, int[] targets)
    {
        var index = tensor(at.Select(i => (long)i).ToArray(), device: h.device);
        var logp = model.Head(h.index_select(1, index)).select(0, 0).to(ScalarType.Float32).log_softmax(-1);   // [m, vocab]
        var wanted = tensor(targets.Select(i => (long)i).ToArray(), device: h.device).view(-1, 1);
        return logp.gather(1, wanted).to(ScalarType.Float64).cpu().data<double>().ToArray();
    }

    /// <summary>Sends each scoring row of <paramref name="rows"/> its one (final) event; returns them.</summary>
    private List<EngineRow> EndScoring(IEnumerable<EngineRow> rows)
    {
        var ended = new List<EngineRow>();
        foreach (var row in rows.Where(r => r.IsScoring))
        {
            // the tokens it computed: a decision's rows overlap (each question's row starts with the shared input, read
            // from the cache), so their whole prompts would count the input once per question
            row.Report(observer, row.Request.PromptIds.Length - row.CachedTokens + row.Request.BranchTokens, 0);
            row.Channel.Writer.TryWrite(row.Scored());
            ended.Add(row);
        }
        return ended;
    }

    /// <summary>One token for each running row (row i in slot i), fed at its own position through the decode step that
    /// <see cref="DecodeStep.Choose"/> picks for the slot pool (the managed step while one row runs, where it applies;
    /// else the libtorch step); returns the rows that finished.</summary>
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
        var logits = WithAdapters(rows, a => layers.Decode(a, feed, lengths.view(n, 1), mask, new CacheWrite.Decode(lengths, span))).select(1, 0); // [n, vocab]
        foreach (var row in rows) row.Length++;
        return Sample(rows, logits);
    }

    /// <summary>A prefill's layers, then <paramref name="head"/> on the hidden states, with each row's adapter selected.</summary>
    private Tensor? Forward(IReadOnlyList<EngineRow> rows, Tensor ids, Tensor positions, Tensor mask, CacheWrite write, Func<Tensor, Tensor?> head) =>
        WithAdapters(rows, a => head(layers.Prefill(a, ids, positions, mask, write)));

    /// <summary>Runs <paramref name="forward"/> (given each row's adapter) with each row's adapter selected (the head
    /// included: it may carry one).</summary>
    private T WithAdapters<T>(IReadOnlyList<EngineRow> rows, Func<IReadOnlyList<string?>, T> forward)
    {
        var names = rows.Select(r => r.Request.Adapter).ToArray();
        adapters.Select(names);
        try { return forward(names); }
        finally { adapters.ClearSelection(); }
    }

    /// <summary>Picks each row's token from logits [n, vocab] (row i = rows[i]): argmax for a greedy row, else its own
    /// seeded sampler over its request's temperature / top-k / top-p. Sends the events; returns the rows that finished.</summary>
    private List<EngineRow> Sample(IReadOnlyList<EngineRow> rows, Tensor logits)
    {
        var finished = new List<EngineRow>();
        // Log probabilities of the raw logits, before a constraint's mask (vLLM's default logprobs mode): the masked
        // ones would give -inf for every alternative the constraint forbids, which JSON cannot carry.
        Tensor? logp = rows.Any(r => r.Request.Sampling.Logprobs is not null) ? logits.log_softmax(-1) : null;
        logits = Constrain(rows, logits, finished);
        long[] argmax = logits.argmax(-1).cpu().data<long>().ToArray();
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
    /// Special tokens are shown: a top alternative may be one, and would read as nothing.
    /// A logprob of −inf (a logit the model itself made −inf) is written as −9999, as vLLM writes it: JSON has no infinity.</summary>
    private TokenLogprob Logprob(int? previous, int id, float value) => new(id, previous is { } p
        ? IncrementalText.After(tokenizer, p, [id], skipSpecialTokens: false)
        : tokenizer.Decode([id], skipSpecialTokens: false), Math.Max(value, -9999f));
}
