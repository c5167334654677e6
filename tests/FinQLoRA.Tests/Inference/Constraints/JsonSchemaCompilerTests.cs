using System.Text;
using System.Text.Json;
using FinQLoRA.Inference.Constraints;

namespace FinQLoRA.Tests.Inference.Constraints;

/// <summary>Each schema feature: values drawn at random from the compiled automaton parse with System.Text.Json and
/// pass the independent <see cref="SchemaValidator"/>; hand-written documents that validate are accepted and ones that
/// do not are rejected; every unsupported keyword is refused with its JSON pointer path.</summary>
public sealed class JsonSchemaCompilerTests
{
    private const string Person = """
        {"type": "object", "title": "Person", "description": "ignored", "$schema": "https://json-schema.org/draft/2020-12/schema",
         "properties": {
           "name": {"type": "string", "minLength": 1, "maxLength": 12},
           "age": {"type": "integer"},
           "email": {"type": "string", "pattern": "^[a-z]{1,8}@[a-z]{1,8}\\.com$"},
           "tags": {"type": "array", "items": {"enum": ["bond", "stock", "cash"]}, "minItems": 1, "maxItems": 3},
           "active": {"type": "boolean", "default": true},
           "nickname": {"type": ["string", "null"], "maxLength": 6},
           "score": {"type": "number", "examples": [1.5]}
         },
         "required": ["name", "age", "tags", "active"], "additionalProperties": false}
        """;

    public static readonly TheoryData<string, string> Schemas = new()
    {
        { "person", Person },
        { "all optional", """{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"boolean"},"c":{"type":"null"}}}""" },
        { "anyOf", """{"anyOf":[{"type":"string","maxLength":5},{"type":"integer"},{"type":"null"}]}""" },
        { "defs and ref", """{"$defs":{"addr":{"type":"object","properties":{"city":{"type":"string","maxLength":8},"zip":{"type":"string","pattern":"^\\d{5}$"}},"required":["city","zip"]}},"type":"object","properties":{"home":{"$ref":"#/$defs/addr"},"work":{"$ref":"#/$defs/addr","description":"an annotation beside $ref"}},"required":["home"]}""" },
        { "definitions", """{"definitions":{"x":{"type":"integer"}},"type":"array","items":{"$ref":"#/definitions/x"},"maxItems":4}""" },
        { "enum of any values", """{"enum":[1,"two",null,{"a":[1,2]},true,3.5,"é\"q"]}""" },
        { "const", """{"const":{"k":"v","n":[null,false]}}""" },
        { "array bounds", """{"type":"array","items":{"type":"number"},"minItems":2,"maxItems":4}""" },
        { "unanchored pattern", """{"type":"string","pattern":"ab+c"}""" },
        { "string lengths", """{"type":"string","minLength":2,"maxLength":4}""" },
        { "allOf of one", """{"allOf":[{"type":"object","properties":{"x":{"type":"string","enum":["a","b"]}},"required":["x"]}]}""" },
        { "any value", """{}""" },
        { "typed enum", """{"type":"string","enum":["a",1,"b",null]}""" },
        { "nested arrays", """{"type":"array","items":{"type":"array","items":{"type":"integer"},"maxItems":2},"minItems":1,"maxItems":2}""" },
    };

    [Theory]
    [MemberData(nameof(Schemas))]
    public void DrawnValuesParseAndValidate(string name, string schemaText)
    {
        using var schema = JsonDocument.Parse(schemaText);
        var automaton = new Automaton(JsonSchemaCompiler.Compile(schema.RootElement));
        var drawn = automaton.Samples(150, seed: name.Length).ToList();
        Assert.Equal(150, drawn.Count);
        foreach (string text in drawn)
        {
            using var doc = JsonDocument.Parse(text);
            Assert.True(SchemaValidator.Validate(doc.RootElement, schema.RootElement) is null,
                $"{name}: {text} fails: {SchemaValidator.Validate(doc.RootElement, schema.RootElement)}");
        }
        Assert.True(drawn.Distinct().Count() > (name.Contains("const") ? 0 : 1), $"{name}: the draws do not differ");
    }

    [Fact]
    public void HandWrittenPeopleAreAcceptedOrRejectedAsTheValidatorSays()
    {
        using var schema = JsonDocument.Parse(Person);
        var automaton = new Automaton(JsonSchemaCompiler.Compile(schema.RootElement));
        string[] valid =
        [
            """{"name":"Ann","age":41,"tags":["bond"],"active":true}""",
            """{"name": "Ann", "age": -3, "email": "ann@bank.com", "tags": ["bond", "cash"], "active": false, "nickname": null, "score": 2.5e-3}""",
            "{\n  \"name\": \"B\\u00e9\\n\",\n  \"age\": 0,\n  \"tags\": [\n    \"stock\"\n  ],\n  \"active\": true,\n  \"nickname\": \"bo\"\n}",
        ];
        string[] invalid =
        [
            """{"name":"Ann","age":41,"active":true}""",                                   // tags missing
            """{"name":"Ann","age":41.5,"tags":["bond"],"active":true}""",                  // not an integer
            """{"name":"Ann","age":41,"tags":[],"active":true}""",                          // minItems
            """{"name":"Ann","age":41,"tags":["gold"],"active":true}""",                    // not in enum
            """{"name":"Ann","age":41,"tags":["bond"],"active":true,"x":1}""",              // additional property
            """{"name":"Ann","age":41,"email":"ANN@x.com","tags":["bond"],"active":true}""", // pattern
            """{"name":"","age":41,"tags":["bond"],"active":true}""",                       // minLength
            """{"name":"Ann","age":41,"tags":["bond"],"active":true,"nickname":"toolongname"}""", // maxLength
        ];
        foreach (string text in valid)
        {
            using var doc = JsonDocument.Parse(text);
            Assert.Null(SchemaValidator.Validate(doc.RootElement, schema.RootElement));
            Assert.True(automaton.Matches(text), text);
        }
        foreach (string text in invalid)
        {
            using var doc = JsonDocument.Parse(text);
            Assert.NotNull(SchemaValidator.Validate(doc.RootElement, schema.RootElement));
            Assert.False(automaton.Matches(text), text);
        }
    }

    [Fact]
    public void WhitespaceIsNoneOneSpaceOrANewlineWithUpTo16SpacesBetweenTokensOnly()
    {
        using var schema = JsonDocument.Parse("""{"type":"object","properties":{"a":{"type":"array","items":{"type":"integer"}}},"required":["a"]}""");
        var automaton = new Automaton(JsonSchemaCompiler.Compile(schema.RootElement));
        Assert.True(automaton.Matches("""{"a":[1,2]}"""));
        Assert.True(automaton.Matches("""{ "a": [ 1, 2 ] }"""));
        Assert.True(automaton.Matches("{\n\"a\":\n[\n                1,\n2\n]\n}"));
        Assert.False(automaton.Matches("""{  "a":[1]}"""));                    // two spaces
        Assert.False(automaton.Matches("{\t\"a\":[1]}"));                      // a tab
        Assert.False(automaton.Matches("{\n" + new string(' ', 17) + "\"a\":[1]}")); // indentation past 16
        Assert.False(automaton.Matches("""{"a" :[1]}"""));                     // before ':'
        Assert.False(automaton.Matches("""{"a":[1 ,2]}"""));                   // before ','
        Assert.False(automaton.Matches(""" {"a":[1]}"""));                     // before the value
        Assert.False(automaton.Matches("""{"a":[1]} """));                     // after it
        // a bounded-number rule: at most 15 digits before the point
        Assert.True(automaton.Matches("{\"a\":[" + new string('9', 15) + "]}"));
        Assert.False(automaton.Matches("{\"a\":[" + new string('9', 16) + "]}"));
    }

    [Fact]
    public void JsonObjectIsAnyObjectNestedAtMostFiveDeep()
    {
        var automaton = new Automaton(ConstraintSpec.JsonObject().ToPattern());
        foreach (string text in automaton.Samples(200, seed: 7, stopWhenAccepting: 0.5))
        {
            using var doc = JsonDocument.Parse(text);
            Assert.Equal(JsonValueKind.Object, doc.RootElement.ValueKind);
            Assert.InRange(SchemaValidator.Depth(doc.RootElement), 1, ConstraintSpec.JsonObjectDepth);
        }
        Assert.True(automaton.Matches("""{"a":{"b":{"c":{"d":{"e":1}}}}}"""));
        Assert.False(automaton.Matches("""{"a":{"b":{"c":{"d":{"e":{}}}}}}"""));
        Assert.False(automaton.Matches("[1]"));
        Assert.True(automaton.Matches("""{"k":[1,"x",null,true,{"y":-0.5e+10}], "": "\ud83d\ude00 \u00e9"}"""));
        Assert.False(automaton.Matches("""{"k":"\ud800"}""")); // a lone surrogate escape is not a character
    }

    [Theory]
    [InlineData("""{"type":"string","format":"date"}""", "unsupported JSON Schema keyword 'format' at #")]
    [InlineData("""{"type":"object","properties":{"date":{"type":"string","format":"date"}}}""", "unsupported JSON Schema keyword 'format' at #/properties/date")]
    [InlineData("""{"properties":{"x":{"oneOf":[{"type":"string"},{"type":"integer"}]}}}""", "unsupported JSON Schema keyword 'oneOf' at #/properties/x")]
    [InlineData("""{"type":"integer","minimum":0}""", "unsupported JSON Schema keyword 'minimum' at #")]
    [InlineData("""{"type":"array","items":{"type":"string"},"uniqueItems":true}""", "unsupported JSON Schema keyword 'uniqueItems' at #")]
    [InlineData("""{"type":"array","prefixItems":[{"type":"string"}]}""", "unsupported JSON Schema keyword 'prefixItems' at #")]
    [InlineData("""{"type":"object","patternProperties":{"^x":{}}}""", "unsupported JSON Schema keyword 'patternProperties' at #")]
    [InlineData("""{"not":{"type":"string"}}""", "unsupported JSON Schema keyword 'not' at #")]
    [InlineData("""{"type":"object","properties":{"a":{"type":"array","items":{"if":{}}}}}""", "unsupported JSON Schema keyword 'if' at #/properties/a/items")]
    [InlineData("""{"type":"object","additionalProperties":true}""", "'additionalProperties' other than false is not supported at #")]
    [InlineData("""{"type":"object","properties":{"m":{"type":"object","additionalProperties":{"type":"string"}}}}""", "'additionalProperties' other than false is not supported at #/properties/m (list every property under 'properties')")]
    [InlineData("""{"$defs":{"node":{"type":"object","properties":{"next":{"$ref":"#/$defs/node"}}}},"$ref":"#/$defs/node"}""", "recursive $ref '#/$defs/node' is not supported at #/$defs/node/properties/next")]
    [InlineData("""{"$ref":"#/$defs/missing"}""", "$ref '#/$defs/missing' names no definition at #")]
    [InlineData("""{"$ref":"#"}""", "$ref '#' is not supported")]
    [InlineData("""{"type":"array","items":[{"type":"string"}]}""", "'items' as a list (tuple validation) is not supported at #")]
    [InlineData("""{"type":"strin"}""", "unknown type 'strin'")]
    [InlineData("""{"type":"object","properties":{"a":{}},"required":["b"]}""", "required property 'b' is not under 'properties'")]
    [InlineData("""{"type":"object","properties":{"code":{"type":"string","pattern":"(?=x)y"}}}""", "pattern: lookaround is not supported at position 0 of the regex at #/properties/code/pattern")]
    [InlineData("""{"type":"string","minItems":1}""", "keyword 'minItems' does not apply to type 'string' at #")]
    [InlineData("""{"type":"string","pattern":"a","maxLength":3}""", "'pattern' together with 'minLength' or 'maxLength' is not supported")]
    [InlineData("""{"anyOf":[{"type":"string"}],"type":"string"}""", "'type' next to 'anyOf' is not supported")]
    [InlineData("""{"allOf":[{"type":"string"},{"maxLength":3}]}""", "'allOf' with other than exactly one schema is not supported at #")]
    [InlineData("""{"enum":["a"],"maxLength":3}""", "'maxLength' together with 'enum' is not supported")]
    [InlineData("""{"type":"object","properties":{"a":{"$ref":"#/$defs/x","type":"string"}},"$defs":{"x":{}}}""", "'type' next to '$ref' is not supported at #/properties/a (move it into the referenced or listed schemas)")]
    [InlineData("""{"type":"string","maxLength":-1}""", "'maxLength' must be a non-negative integer at #")]
    public void UnsupportedKeywordsAreRefusedWithTheirPath(string schema, string message)
    {
        using var doc = JsonDocument.Parse(schema);
        var e = Assert.Throws<ConstraintException>(() => JsonSchemaCompiler.Compile(doc.RootElement));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void ASchemaNoValueSatisfiesIsRefusedWhenCompiled()
    {
        var vocabulary = new TokenVocabulary([.. Enumerable.Range(0, 256).Select(b => new[] { (byte)b })]);
        foreach (string schema in new[] { """{"type":"string","minLength":5,"maxLength":2}""", """{"type":"string","pattern":"^\""}""", """{"type":"integer","enum":["a"]}""" })
        {
            using var doc = JsonDocument.Parse(schema);
            var e = Assert.Throws<ConstraintException>(() => new CompiledConstraint(ConstraintSpec.JsonSchema(doc.RootElement), vocabulary, []));
            Assert.Contains("matches no value", e.Message);
        }
        Assert.Contains("too large", Assert.Throws<ConstraintException>(() =>
            new CompiledConstraint(ConstraintSpec.Regex("(((\\w{1000}){1000}){1000})"), vocabulary, [])).Message);
        _ = Encoding.UTF8;
    }
}
