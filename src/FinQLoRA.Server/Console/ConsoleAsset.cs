namespace FinQLoRA.Server.ConsolePage;

/// <summary>One file of the console page as it is served: its bytes, its content type and its entity tag (a hash of
/// the bytes, so that a browser revalidates with If-None-Match and gets 304 until the server is upgraded).</summary>
internal sealed record ConsoleAsset(string Name, byte[] Content, string ContentType, string ETag);
