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

    private LoraTargetShapes(ModelFamily family, int layers, int firstLayer, int modelLayers, Dictionary<(int, ProjectionKind), (long, long)> shapes)
    {
        Family = family;
        Layers = layers;
        FirstLayer = firstLayer;
        ModelLayers = modelLayers;
        _shapes = shapes;
    }

    public ModelFamily Family { get; }
    /// <summary>Layers this model holds: all of them, or a pipeline stage's [FirstLayer, FirstLayer + Layers).</summary>
    public int Layers { get; }
    /// <summary>The model's index of this (stage) model's first layer; 0 for a whole model.</summary>
    public int FirstLayer { get; }
    /// <summary>Layers of the whole model (an adapter's layer indices go up to this).</summary>
    public int ModelLayers { get; }

    /// <summary>(in, out) of one projection of one layer (this model's index).</summary>
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
        return new LoraTargetShapes(model.Config.Family, model.Layers.Count, model.FirstLayer, model.Config.NumLayers, shapes);
    }
}
