using System.Text.Json;
using FinQLoRA.Adapters;
using FinQLoRA.Distributed;
using FinQLoRA.Models;
using FinQLoRA.Models.Families;
using FinQLoRA.Training.Optimizers;
using FinQLoRA.Training.Schedules;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FinQLoRA.Training;

/// <summary>
/// The checkpoints of one run folder: resume from the newest sound one, save one (with every rank's own state),
/// and set aside the ones a divergence spoiled. A checkpoint is never written (or later named) when it holds NaN or inf.
/// </summary>
public sealed class RunCheckpoints(string outDir, int keep, ICommunicator comm, Action<string> log)
{
    private bool IsMain => comm.Rank == 0;

    /// <summary>Before anything loads: the newest checkpoint's adapter has the shape (rank, alpha, targets, DoRA/rsLoRA)
    /// the config asks for; the same first check <see cref="ResumeFromLatest"/> makes.</summary>
    public void CheckResumable(LoraConfig lora, ModelFamily family)
    {
        var checkpoints = TrainingCheckpoint.List(outDir);
        if (checkpoints.Count > 0) TrainingCheckpoint.CheckSameAdapter(checkpoints[^1].Path, lora, family);
    }

    /// <summary>Before anything loads: the newest checkpoint was trained with <paramref name="privacy"/>'s settings
    /// (null: without DP), so that the ε counted on is the ε spent.</summary>
    public void CheckResumablePrivacy(System.Text.Json.Nodes.JsonObject? privacy)
    {
        var checkpoints = TrainingCheckpoint.List(outDir);
        if (checkpoints.Count > 0) Privacy.PrivacyPlan.CheckSame(TrainingCheckpoint.PrivacyOf(checkpoints[^1].Path), privacy, checkpoints[^1].Path);
    }

    /// <summary>
    /// Loads the newest checkpoint that is complete and readable into <paramref name="model"/>; a damaged one (a
    /// truncated file, say) is reported and the one before it is tried. An adapter of another shape (rank, alpha,
    /// targets, DoRA/rsLoRA) than the config asks for is an error, not a fallback.
    /// </summary>
    public TrainingCheckpoint.Loaded ResumeFromLatest(DecoderModel model, LoraConfig lora)
    {
        var checkpoints = TrainingCheckpoint.List(outDir);
        for (int i = checkpoints.Count - 1; i >= 0; i--)
        {
            string path = checkpoints[i].Path;
            TrainingCheckpoint.CheckSameAdapter(path, lora, model.Config.Family);
            TrainingCheckpoint.Loaded? loaded = null;
            try
            {
                loaded = TrainingCheckpoint.Load(path, comm.Rank, comm.Size);
                PeftAdapterFiles.Load(loaded.AdapterDir, model, LoraLinear.DefaultAdapter);
                if (lora.FreezeA) LoraInjector.FreezeA(model); // PEFT's files cannot say so; A stays as the checkpoint holds it
                if (IsMain) log($"resuming from {path} (step {loaded.State.Step})");
                return loaded;
            }
            catch (Exception e) when (i > 0 && e is UserInputException or IOException)
            {
                loaded?.Dispose();
                if (IsMain) log($"warning: {path} is incomplete or damaged ({e.Message}); resuming from {checkpoints[i - 1].Path} instead");
            }
        }
        throw UserInputException.About($"resume: {outDir} has no complete checkpoint to resume from; drop {new ConfigField("resume")} to start a new run");
    }

    /// <summary>Puts the optimizer, the schedule and the random state back where the checkpoint left them.</summary>
    /// <returns>the loop's position: the steps done, the epoch and the next batch in it</returns>
    public static (int Step, int Epoch, int NextBatch) Restore(TrainingCheckpoint.Loaded resume, IAdapterOptimizer optimizer, LrSchedule schedule)
    {
        var scalars = resume.OptimizerScalars.Deserialize<OptimizerScalarState>()!;
        using (var state = new OptimizerCheckpoint(resume.OptimizerTensors, scalars)) optimizer.LoadStateDict(state);
        schedule.LoadState(new LrScheduleState(resume.State.Step));
        set_rng_state(resume.RngState);
        return (resume.State.Step, resume.State.Epoch, resume.State.NextBatch);
    }

    /// <summary>This rank's own adapter weights from a checkpoint (0/1 Adam: they differ between synchronisations).</summary>
    public static void LoadRankParameters(IReadOnlyList<(string Name, Parameter P)> parameters, Dictionary<string, Tensor> values)
    {
        using var noGrad = no_grad();
        foreach (var (name, p) in parameters)
        {
            if (!values.TryGetValue(name, out var value))
                throw new UserInputException($"the checkpoint's per-rank state has no value for adapter parameter '{name}'; resume with the same adapter config");
            p.copy_(value);
        }
        foreach (var value in values.Values) value.Dispose();
    }

    public void Save(DecoderModel model, LoraConfig lora, IAdapterOptimizer optimizer, IReadOnlyList<(string Name, Parameter P)> parameters,
        TrainingCheckpoint position, BestCheckpoint best, System.Text.Json.Nodes.JsonObject? privacy = null)
    {
        using var scope = NewDisposeScope();
        using var state = optimizer.StateDict();
        var others = new List<Dictionary<string, Tensor>>();
        if (comm.Size > 1)
        {
            // See RankLocalState: an optimizer that communicates by itself keeps per-rank state and weights.
            var local = new Dictionary<string, Tensor> { [RankLocalState.RngKey] = get_rng_state() };
            if (optimizer.CommunicatesGradients)
            {
                foreach (var (name, t) in state.Tensors) local[RankLocalState.OptimizerPrefix + name] = t;
                foreach (var (name, p) in parameters) local[RankLocalState.ParameterPrefix + name] = p.detach();
            }
            others = RankLocalState.GatherToMain(comm, local);
        }
        // Never write (or later name) a checkpoint that holds NaN or inf: it could not be resumed from.
        var named = parameters.Select(p => ("adapter " + p.Name, (Tensor)p.P)).Concat(state.Tensors.Select(kv => ("optimizer " + kv.Key, kv.Value)));
        if (FirstNonFinite(named) is { } bad) throw Diverged($"{bad} is not finite", position.Step, firstBadWeights: position.Step);
        if (!IsMain) return;
        var scalars = JsonSerializer.SerializeToNode(state.Scalars)!;
        TrainingCheckpoint.Save(outDir, position, model, lora, state.Tensors, scalars, keep, others, best.ToJson(), privacy);
        log($"saved checkpoint-{position.Step}");
    }

    /// <summary>Drops checkpoints beyond <c>keep_checkpoints</c> (main rank).</summary>
    public void Prune()
    {
        if (IsMain) TrainingCheckpoint.Prune(outDir, keep);
    }

    /// <summary>
    /// Stops a diverging run. Checkpoints from <paramref name="firstBadWeights"/> on hold the weights that diverged:
    /// they are renamed <c>checkpoint-N.diverged</c> (kept for inspection, never resumed from), and the message names
    /// the newest checkpoint before them, whose weights the following step's loss showed to be sound.
    /// </summary>
    public TrainingStoppedException Diverged(string what, int step, int firstBadWeights)
    {
        var all = TrainingCheckpoint.List(outDir);
        if (IsMain)
            foreach (var (s, path) in all.Where(x => x.Step >= firstBadWeights))
            {
                string aside = path + ".diverged";
                for (int n = 2; Path.Exists(aside); n++) aside = $"{path}.diverged{n}"; // an earlier divergence at the same step
                Directory.Move(path, aside);
            }
        var good = all.Where(x => x.Step < firstBadWeights).ToList();
        var resume = new ConfigField("resume");
        var lr = new ConfigField("lr");
        return new TrainingStoppedException(good.Count > 0
            ? UserInputException.About($"{what} at step {step}; stopping: the last good checkpoint is {good[^1].Path} (continue from it with {resume} and a lower {lr}); lower {lr} or check the data")
            : UserInputException.About($"{what} at step {step}; stopping: no checkpoint before it is good; lower {lr} or check the data"));
    }

    /// <summary>The name of the first tensor holding NaN or ±inf, or null.</summary>
    public static string? FirstNonFinite(IEnumerable<(string Name, Tensor T)> tensors)
    {
        using var scope = NewDisposeScope();
        foreach (var (name, t) in tensors)
            if (t.is_floating_point() && !isfinite(t).all().item<bool>()) return name;
        return null;
    }
}
