using Blip2Sharp.Generation;
using Blip2Sharp.Tasks;
using Xunit;

namespace Blip2Sharp.Tests;

public class PipelineTests
{
    private static string Image(int i) => Path.Combine(Fixtures.Dir("tiny-opt"), "images", i == 0 ? "img0_RGB_40x30.png" : "img1_RGBA_25x35.png");

    [Fact]
    public void ThePromptIsNotEchoedAndBatchesMatchSingleRuns()
    {
        using var p = Blip2Pipeline.FromPretrained(Fixtures.Dir("tiny-opt"));
        var o = new GenerationOptions { MaxNewTokens = 12 };
        var both = p.Run([Image(0), Image(1)], ["a photo of", "Question: what is the man doing? Answer:"], o);
        var golden = Fixtures.Goldens("tiny-opt")["gen_greedy_prompt"];
        for (int i = 0; i < 2; i++)
        {
            var expectedIds = golden[i].data<long>().ToArray().Skip(1).Select(x => (int)x).ToList();
            Assert.Equal(expectedIds, both[i].Sequences[0].GeneratedIds);
            Assert.Equal(p.Decode(expectedIds), both[i].Text);
            var single = p.Run([Image(i)], [i == 0 ? "a photo of" : "Question: what is the man doing? Answer:"], o);
            Assert.Equal(both[i].Sequences[0].GeneratedIds, single[0].Sequences[0].GeneratedIds);
        }
        Assert.False(both[0].Text.StartsWith("a photo of"));
    }

    [Fact]
    public void VqaPromptFollowsTheLanguageModel()
    {
        using var opt = Blip2Pipeline.FromPretrained(Fixtures.Dir("tiny-opt"));
        using var t5 = Blip2Pipeline.FromPretrained(Fixtures.Dir("tiny-t5"));
        Assert.Equal("Question: what is it? Answer:", opt.VqaPrompt("what is it?"));
        Assert.Equal("Question: what is it? Short answer:", t5.VqaPrompt("what is it?"));
    }

    [Fact]
    public void APromptLongerThanTheContextIsAClearError()
    {
        using var p = Blip2Pipeline.FromPretrained(Fixtures.Dir("tiny-opt")); // 64 positions
        var e = Assert.Throws<ArgumentException>(() => p.Run([Image(0)], [string.Join(" ", Enumerable.Repeat("photo", 80))], new GenerationOptions()));
        Assert.Contains("exceeds the language model's 64 positions", e.Message);
    }

    [Fact]
    public async Task ChatChainsTheContextAndStreams()
    {
        using var p = Blip2Pipeline.FromPretrained(Fixtures.Dir("tiny-opt"));
        using var chat = new ChatSession(p, Image(0));
        var o = new GenerationOptions { MaxNewTokens = 5 };
        var pieces = new List<string>();
        await foreach (var s in chat.AskAsync("what is it?", o)) pieces.Add(s);
        Assert.NotEmpty(pieces);
        Assert.Single(chat.Turns);
        Assert.Equal(string.Concat(pieces).Trim(), chat.Turns[0].Answer);
        Assert.Equal($"Question: what is it? Answer: {chat.Turns[0].Answer}. Question: and then? Answer:", chat.PromptFor("and then?"));
    }
}
