namespace FinQLoRA.Training;

/// <summary>What an adapter cost, as the report's cost table shows it: its size on disk, and the device-hours of the
/// training run that made it (0 when the adapter did not come from <c>finqlora train</c>).</summary>
public sealed record AdapterCost(long Bytes, double DeviceHours)
{
    public static AdapterCost None { get; } = new(0, 0);

    public static AdapterCost Of(string adapterDir)
    {
        long bytes = Directory.GetFiles(adapterDir).Sum(f => new FileInfo(f).Length);
        double hours = RunRecord.ForAdapter(adapterDir)?["device_hours"] is System.Text.Json.Nodes.JsonValue v && v.TryGetValue(out double h) ? h : 0;
        return new AdapterCost(bytes, hours);
    }
}
