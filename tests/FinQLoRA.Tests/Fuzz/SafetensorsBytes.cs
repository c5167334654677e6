using System.Text;

namespace FinQLoRA.Tests.Fuzz;

/// <summary>A safetensors file from a raw header string and a data-area size: any header, valid or not.</summary>
internal static class SafetensorsBytes
{
    public static byte[] Of(string header, int dataBytes) =>
        [.. BitConverter.GetBytes((long)Encoding.UTF8.GetByteCount(header)), .. Encoding.UTF8.GetBytes(header), .. new byte[dataBytes]];
}
