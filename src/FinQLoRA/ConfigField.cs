namespace FinQLoRA;

/// <summary>
/// An option's field name (snake_case, as the train config's keys are: <c>bits</c>, <c>dtype</c>, <c>max_new_tokens</c>)
/// placed in a <see cref="UserInputException.About"/> message, so that the library names the field and each front end
/// renders it its own way (the CLI as <c>--bits</c>), without the library knowing about flags.
/// </summary>
public readonly record struct ConfigField(string Name)
{
    public override string ToString() => Name;
}
