namespace FinQLoRA.Tests.Training;

/// <summary>Reads scalars back from a TensorBoard event file: TFRecord framing (u64 length, u32 crc, data, u32 crc)
/// around TensorBoard's Event protobuf (the generated classes ship with TorchSharp).</summary>
public static class TensorBoardEvents
{
    public sealed record Scalar(string Tag, long Step, float Value);

    public static List<Scalar> Read(string file)
    {
        var scalars = new List<Scalar>();
        using var reader = new BinaryReader(File.OpenRead(file));
        while (reader.BaseStream.Position < reader.BaseStream.Length)
        {
            long length = (long)reader.ReadUInt64();
            reader.ReadUInt32();
            byte[] data = reader.ReadBytes((int)length);
            reader.ReadUInt32();
            var e = Tensorboard.Event.Parser.ParseFrom(data);
            if (e.Summary == null) continue;
            foreach (var v in e.Summary.Value) scalars.Add(new Scalar(v.Tag, e.Step, v.SimpleValue));
        }
        return scalars;
    }
}
