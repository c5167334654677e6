using FinQLoRA.Models;

namespace FinQLoRA.Inference.Pipeline;

/// <summary>
/// Splits the decoder layers into contiguous stages so that the largest stage holds as few parameters as possible:
/// the slowest (and fullest) stage sets the pace of the whole pipeline. The embeddings, the final norm and the lm_head
/// all weigh on the first stage, so with a large vocabulary it gets fewer layers: the generation engine over a pipeline
/// (<c>generate</c>, <c>eval</c> and <c>serve</c> with <c>pipeline_stages</c>) embeds, applies the head and samples on
/// rank 0, and the other stages return hidden states to it.
/// </summary>
public static class PipelinePlanner
{
    /// <summary>Parameters of one decoder layer: its projections, biases and norms as the family's layout lists them.</summary>
    public static long LayerParameters(ModelConfig c) =>
        ModelLayout.BlockTensors(c, 0).Sum(t => t.Shape.Aggregate(1L, (a, b) => a * b));

    public static PipelinePlan Plan(ModelConfig config, int stages)
    {
        int layers = config.NumLayers;
        if (stages < 1 || stages > layers)
            throw UserInputException.About($"{new ConfigField("pipeline_stages")} {stages} does not fit a model of {layers} decoder layers; use 1 to {layers} stages");
        long embed = (long)config.VocabSize * config.HiddenSize;
        long head = config.HiddenSize + (config.TieWordEmbeddings ? 0 : embed); // final norm + lm_head (a tied head is the embedding matrix)
        long layer = LayerParameters(config);

        // Stage cost of layers [a, b) as stage s: layers plus, on the first stage, the embeddings and the head.
        long Cost(int s, int a, int b) => (b - a) * layer + (s == 0 ? embed + head : 0);

        // best[s, b]: the smallest possible largest-stage cost when stages 0..s cover layers [0, b).
        var best = new long[stages, layers + 1];
        var cut = new int[stages, layers + 1];
        for (int b = 1; b <= layers; b++) best[0, b] = Cost(0, 0, b);
        for (int s = 1; s < stages; s++)
        {
            for (int b = s + 1; b <= layers; b++)
            {
                best[s, b] = long.MaxValue;
                // Every stage keeps at least one layer; ties go to the later cut so earlier stages take more layers.
                for (int a = s; a < b; a++)
                {
                    long worst = Math.Max(best[s - 1, a], Cost(s, a, b));
                    if (worst <= best[s, b]) { best[s, b] = worst; cut[s, b] = a; }
                }
            }
        }

        var result = new PipelineStage[stages];
        int end = layers;
        for (int s = stages - 1; s >= 0; s--)
        {
            int start = s == 0 ? 0 : cut[s, end];
            result[s] = new PipelineStage(s, start, end - start, Cost(s, start, end), HoldsEmbeddings: s == 0, HoldsHead: s == 0);
            end = start;
        }
        return new PipelinePlan(result);
    }
}
