using System.ComponentModel;
using System.Runtime.CompilerServices;
using Spectre.Console;

namespace FinQLoRA.Cli.Commands;

/// <summary>
/// The help text of a <see cref="TrainSettings"/> option: its train key's <see cref="Training.TrainKey.Description"/>,
/// so the text lives once, in <see cref="Training.TrainKeys"/>. Spectre reads an option's help from its
/// <see cref="DescriptionAttribute"/>; this one names no text, only the property it is on (filled in by the compiler),
/// and finds the key that property sets through <see cref="TrainSettings.KeyOptions"/>.
/// </summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class TrainKeyDescriptionAttribute([CallerMemberName] string property = "") : DescriptionAttribute
{
    public string Property { get; } = property;

    public override string Description => Markup.Escape(
        TrainSettings.KeyOptions.FirstOrDefault(k => k.Option.Name == Property).Key?.Description
        ?? throw new InvalidOperationException($"TrainSettings.{Property} sets no train key; give it a [Description]"));
}
