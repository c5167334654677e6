using FinQLoRA;
using FinQLoRA.Cli;
using FinQLoRA.Cli.Commands;
using FinQLoRA.Runtime;
using Spectre.Console.Cli;

// The libstdc++ fix must run before anything touches TorchSharp.
TorchNativeLoader.EnsureLoaded();
ConsoleStreams.Configure(args);

var app = new CommandApp();
app.Configure(config =>
{
    config.SetApplicationName("finqlora");
    config.PropagateExceptions();
    CommandRegistry.Register(config);
});

bool verbose = args.Contains("--verbose") || Environment.GetEnvironmentVariable("FINQLORA_VERBOSE") == "1";
try
{
    return app.Run(args);
}
catch (Exception e)
{
    // Everything goes to stderr: stdout may carry --json for another program. One line, unless --verbose.
    var user = e as UserInputException ?? e.InnerException as UserInputException;
    bool isUser = user != null || e is CommandParseException or CommandRuntimeException;
    string message = OneLine(user?.Message ?? (isUser ? e.Message : $"{e.GetType().Name}: {e.Message}"));
    Console.Error.WriteLine(isUser || verbose ? $"error: {message}" : $"error: {message} (run with --verbose for details)");
    if (verbose) Console.Error.WriteLine(e.ToString());
    return isUser ? 2 : 1;
}

static string OneLine(string s) => string.Join(' ', s.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
