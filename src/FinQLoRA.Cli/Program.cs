using FinQLoRA;
using FinQLoRA.Cli.Commands;
using FinQLoRA.Runtime;
using Spectre.Console;
using Spectre.Console.Cli;

var app = new CommandApp();
app.Configure(config =>
{
    config.SetApplicationName("finqlora");
    config.PropagateExceptions();
    CommandRegistry.Register(config);
});

try
{
    // Before anything touches TorchSharp: the libstdc++ fix, or libtorch from FINQLORA_LIBTORCH_DIR (whose errors
    // are user errors, hence inside the try).
    TorchNativeLoader.EnsureLoaded();
    return app.Run(args);
}
catch (Exception e) when (e is UserInputException or CommandParseException or CommandRuntimeException)
{
    // User errors: one line, no stack trace.
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}
catch (Exception e) when (Environment.GetEnvironmentVariable("FINQLORA_VERBOSE") != "1" && !args.Contains("--verbose"))
{
    AnsiConsole.MarkupLine($"[red]error:[/] {Markup.Escape(e.GetType().Name + ": " + e.Message)} (rerun with --verbose for the stack trace)");
    return 1;
}
