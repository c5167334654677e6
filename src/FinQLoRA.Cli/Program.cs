using FinQLoRA.Runtime;
TorchNativeLoader.EnsureLoaded();
Console.WriteLine(TorchSharp.torch.__version__ + " " + TorchNativeLoader.Mode);
var a = TorchSharp.torch.randn(4, 4, TorchSharp.torch.ScalarType.BFloat16);
Console.WriteLine(a.matmul(a).sum().to(TorchSharp.torch.ScalarType.Float32).item<float>());
