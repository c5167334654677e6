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
    return ErrorReport.Write(e, verbose, Console.Error);
}
