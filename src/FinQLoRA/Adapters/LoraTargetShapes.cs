using FinQLoRA.Models;
using FinQLoRA.Models.Families;

namespace FinQLoRA.Adapters;

/// <summary>
/// The shapes an adapter file is checked against: the model's family, its layer count and every projection's
/// (in, out), taken once from the model. A server reads adapter folders on other threads than the one that changes the
/// model's modules (wrapping a projection replaces it), so the check reads this snapshot, never the live modules.
/// </summary>
public sealed class LoraTargetShapes
{
    private readonly Dictionary<(int Layer, ProjectionKind Projection), (long In, long Out)> _shapes;

    private LoraTargetShapes(ModelFamily family, int layers, Dictionary<(int, ProjectionKind), (long, long)> shapes)
    {
        Family = family;
        Layers = layers;
        _shapes = shapes;
    }

    public ModelFamily Family { get; }
    public int Layers { get; }

    /// <summary>(in, out) of one projection of one layer.</summary>
    public (long In, long Out) Of(int layer, ProjectionKind projection) => _shapes[(layer, projection)];

    public static LoraTargetShapes Of(DecoderModel model)
    {
        var shapes = new Dictionary<(int, ProjectionKind), (long, long)>();
        for (int i = 0; i < model.Layers.Count; i++)
            foreach (var projection in model.Config.Family.Projections)
                shapes[(i, projection)] = model.Layers[i][projection] switch
                {
                    LoraLinear l => (l.InFeatures, l.OutFeatures),
                    IFrozenLinear f => (f.InFeatures, f.OutFeatures),
                    _ => ModelLayout.Shape(model.Config, projection),
                };
        return new LoraTargetShapes(model.Config.Family, model.Layers.Count, shapes);
    }
}
