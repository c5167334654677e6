using System.Text;
using Microsoft.AspNetCore.Http;
using Prometheus;

namespace FinQLoRA.Server;

/// <summary><c>GET /metrics</c>: the registry in Prometheus's text format (0.0.4, as vLLM serves it), with the series
/// registered as <c>vllm_…</c> renamed <c>vllm:…</c> (<see cref="VllmMetrics"/>). Only a line's metric name is renamed:
/// sample lines and their <c># HELP</c>/<c># TYPE</c> lines; label values are left as they are.</summary>
internal static class MetricsText
{
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    public static async Task WriteAsync(HttpContext context, CollectorRegistry registry)
    {
        using var buffer = new MemoryStream();
        await registry.CollectAndExportAsTextAsync(buffer, ExpositionFormat.PrometheusText, context.RequestAborted).ConfigureAwait(false);
        string text = Rename(Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length));
        context.Response.ContentType = ContentType;
        await context.Response.WriteAsync(text, Encoding.UTF8, context.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>The exposition text with every metric name that starts with <see cref="VllmMetrics.RegisteredPrefix"/>
    /// starting with <see cref="VllmMetrics.ExposedPrefix"/> instead.</summary>
    public static string Rename(string exposition)
    {
        var lines = exposition.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i];
            int at = line.StartsWith("# HELP ", StringComparison.Ordinal) || line.StartsWith("# TYPE ", StringComparison.Ordinal) ? 7 : 0;
            if (line.AsSpan(at).StartsWith(VllmMetrics.RegisteredPrefix, StringComparison.Ordinal))
                lines[i] = string.Concat(line.AsSpan(0, at), VllmMetrics.ExposedPrefix, line.AsSpan(at + VllmMetrics.RegisteredPrefix.Length));
        }
        return string.Join('\n', lines);
    }
}
