using FinQLoRA.Cli;
using FinQLoRA.Runtime;

ConsoleStreams.Configure(args);

// Before anything touches TorchSharp: the libstdc++ fix, or libtorch from FINQLORA_LIBTORCH_DIR (whose errors are
// user errors, hence inside the error handling).
return CliApp.Run(args, Console.Error, TorchNativeLoader.EnsureLoaded);
