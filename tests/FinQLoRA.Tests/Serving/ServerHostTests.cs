using FinQLoRA.Server;

namespace FinQLoRA.Tests.Serving;

/// <summary><see cref="ServerHost.Open"/> refuses bad options before it reads the model (the path below does not
/// exist, so each error must come first), in-process as <c>finqlora serve</c> does as a command.</summary>
public sealed class ServerHostTests
{
    private static ServerHostOptions Options(ServerOptions server, params (string, string)[] adapters) =>
        new() { ModelPath = "/no/such/model", Server = server, Adapters = adapters };

    [Fact]
    public void OptionsAreCheckedBeforeTheModelIsRead()
    {
        using var adapterDir = new Support.TempFolder();
        (ServerHostOptions Options, string Says)[] cases =
        [
            (Options(new ServerOptions { ServedModelName = "m", Host = "0.0.0.0" }), "needs --api-key"),
            (Options(new ServerOptions { ServedModelName = "m", Port = 70000 }), "--port 70000"),
            (Options(new ServerOptions { ServedModelName = "m", AdapterRoot = "/no/such/dir" }), "--adapter-root"),
            (Options(new ServerOptions { ServedModelName = "m" }, ("a", "/no/such/adapter")), "adapter folder not found"),
            (Options(new ServerOptions { ServedModelName = "m" }, ("m", adapterDir.Path)), "the base model's served name"),
        ];
        foreach (var (options, says) in cases)
            Assert.Contains(says, Assert.Throws<UserInputException>(() => ServerHost.Open(options)).Message);
        // and with every option fine, the missing model is what fails
        Assert.StartsWith("/no/such/model: not found", Assert.Throws<UserInputException>(() => ServerHost.Open(Options(new ServerOptions { ServedModelName = "m" }))).Message);
    }
}
