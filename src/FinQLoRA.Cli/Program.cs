using FinQLoRA;
using FinQLoRA.Cli;
using FinQLoRA.Cli.Commands;
using FinQLoRA.Runtime;
using Spectre.Console.Cli;

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
    // Before anything touches TorchSharp: the libstdc++ fix, or libtorch from FINQLORA_LIBTORCH_DIR (whose errors
    // are user errors, hence inside the try).
    TorchNativeLoader.EnsureLoaded();
    return app.Run(args);
}
catch (Exception e)
{
    return ErrorReport.Write(e, verbose, Console.Error);
}
