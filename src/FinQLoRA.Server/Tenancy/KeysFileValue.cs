namespace FinQLoRA.Server.Tenancy;

/// <summary>A value of a keys-file entry as either format wrote it, before it is checked: YAML's plain scalars carry
/// no type (<c>60</c>, <c>true</c>, <c>desk-a</c> alike), JSON's do. <see cref="Where"/> says where it stands
/// (<c>keys[1].models</c>, with the line for YAML) for the one-line error.</summary>
internal sealed record KeysFileValue(KeysFileValue.Kinds Kind, string Where, string? Text = null, IReadOnlyList<KeysFileValue>? Items = null)
{
    public enum Kinds { Plain, String, Number, Bool, List, Other }
}
