using Blip2Sharp.Cli.Commands;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Blip2Sharp.Cli;

/// <summary>The `blip2` command line: parsing, dispatch, and one-line errors with a non-zero exit code.</summary>
public static class Blip2Cli
{
    /// <summary>Exit code for bad input (files, images, checkpoints); 2 is for command-line usage errors.</summary>
    public const int InputError = 1;
    public const int UsageError = 2;

    /// <summary>The version of the package (Directory.Build.props), without the source revision.</summary>
    public static string Version =>
        (typeof(Blip2Cli).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion ?? "0.0.0")
        .Split('+')[0];

    public static int Run(string[] args)
    {
        var app = new CommandApp();
        (args, var endOfOptions) = EndOfOptions.Split(args);
        app.Configure(c =>
        {
            c.SetApplicationName("blip2");
            c.SetApplicationVersion(Version);
            c.SetInterceptor(endOfOptions);
            c.SetHelpProvider(new Blip2Help(c.Settings));
            c.Settings.StrictParsing = true;
            c.PropagateExceptions();
            c.AddCommand<CaptionCommand>("caption")
                .WithDescription("Caption images (zero-shot, or continuing --prompt).")
                .WithExample("caption", "photo.jpg", "--model", "models/blip2-opt-2.7b")
                .WithExample("caption", "photos/", "--model", "models/blip2-opt-2.7b", "--prompt", "\"a photo of\"", "--num-beams", "5", "--json");
            c.AddCommand<AskCommand>("ask")
                .WithDescription("Answer a question about an image (the paper's zero-shot VQA prompt and preset: beam 5, at most 10 new tokens).")
                .WithExample("ask", "photo.jpg", "\"what is the man holding?\"", "--model", "models/blip2-opt-2.7b");
            c.AddCommand<ChatCommand>("chat")
                .WithDescription("Talk about an image, turn after turn; answers stream as they are generated.")
                .WithExample("chat", "photo.jpg", "--model", "models/blip2-flan-t5-xl");
            c.AddCommand<TokenizeCommand>("tokenize")
                .WithDescription("Show the ids and tokens a checkpoint's tokenizer gives for texts.")
                .WithExample("tokenize", "--model", "models/blip2-opt-2.7b", "\"a photo of a cat\"", "--json");
            c.AddCommand<MatchCommand>("match")
                .WithDescription("Score every image against every text: ITM match probability and ITC similarity (Q-Former only, no LLM).")
                .WithExample("match", "--model", "models/blip2-itm-vit-g", "--image", "a.jpg", "--image", "b.jpg", "--text", "\"a dog\"", "--text", "\"a cat\"");
            c.AddCommand<EmbedCommand>("embed")
                .WithDescription("Image, text and multimodal embeddings, to safetensors or JSON.")
                .WithExample("embed", "--model", "models/blip2-itm-vit-g", "--image", "a.jpg", "--text", "\"a dog\"", "--out", "embeddings.safetensors");
            c.AddCommand<IndexCommand>("index")
                .WithDescription("Embed every image under a folder into an index database (incremental; Ctrl-C keeps what is done).")
                .WithExample("index", "photos/", "--model", "models/blip2-itm-vit-g", "--db", "photos.db");
            c.AddCommand<SearchCommand>("search")
                .WithDescription("Find indexed images by text (ITC over the whole collection, top 128 re-ranked by ITM) or by --image.")
                .WithExample("search", "\"a dog on a beach\"", "--db", "photos.db", "--model", "models/blip2-itm-vit-g", "--top", "5");
            c.AddCommand<ServeCommand>("serve")
                .WithDescription("Serve the model over HTTP: OpenAI-compatible /v1/chat/completions (images as data URLs, streaming), " +
                    "/v1/embeddings, /v1/match, /v1/search, /v1/index, /v1/models, /health, /metrics, /openapi.json and a web page at /.")
                .WithExample("serve")
                .WithExample("serve", "--model", "models/blip2-opt-2.7b", "--retrieval-model", "models/blip2-itm-vit-g", "--db", "photos.db", "--port", "8080", "--api-key-file", "key.txt");
            c.AddCommand<TrainCommand>("train")
                .WithDescription("Train the Q-Former: stage1 (ITC, ITM, ITG) or stage2 (generative, frozen LLM).")
                .WithExample("train", "stage1", "--init", "models/blip2-itm-vit-g", "--data", "pairs.jsonl", "--out", "runs/s1", "--max-steps", "1000")
                .WithExample("train", "stage2", "--init", "models/blip2-opt-2.7b", "--qformer", "runs/s1/checkpoint-1000", "--data", "pairs.jsonl", "--out", "runs/s2");
            c.AddBranch("demo", demo =>
            {
                demo.SetDescription("The built-in demo model: BLIP-2 trained from scratch on synthetic scenes. Without a subcommand: caption, question and search new scenes " +
                    "(options: -n|--scenes N, --seed S, -o|--out DIR, -m|--model DIR, --json).");
                demo.AddExample("demo");
                demo.AddExample("demo", "--scenes", "4", "--seed", "3", "--out", "demo-output");
                demo.SetDefaultCommand<DemoRunCommand>();
                demo.AddCommand<DemoDataCommand>("data")
                    .WithDescription("Render a deterministic dataset of synthetic scenes with captions and question-answer pairs.")
                    .WithExample("demo", "data", "--out", "scenes", "--seed", "1");
                demo.AddCommand<DemoTrainCommand>("train")
                    .WithDescription("Rebuild the demo from scratch: scenes, a text-only OPT, an attribute-trained ViT, BLIP-2 stage 1 and stage 2, evaluation and report.md (30 to 45 minutes on 2 cores, as fast as the machine is that hour). Run again on the same --out, it continues where it stopped; after a crash of the native library it starts again by itself.")
                    .WithExample("demo", "train", "--out", "demo-run", "--seed", "1")
                    .WithExample("demo", "train", "--out", "demo-run", "--seed", "1", "--ablation");
                demo.AddCommand<DemoEvalCommand>("eval")
                    .WithDescription("Evaluate a demo model on a freshly generated test split: caption accuracy, zero-shot VQA, retrieval R@1.")
                    .WithExample("demo", "eval", "--seed", "7", "--json")
                    .WithExample("demo", "eval", "--model", "demo-run/model");
            });
            c.AddBranch("eval", eval =>
            {
                eval.SetDescription("Evaluate a checkpoint on your own annotated data.");
                eval.AddCommand<EvalRetrievalCommand>("retrieval")
                    .WithDescription("Image→text and text→image Recall@1/5/10 (ITC top-k re-ranked by ITM, as LAVIS).")
                    .WithExample("eval", "retrieval", "--data", "annotations.jsonl", "--model", "models/blip2-itm-vit-g");
                eval.AddCommand<EvalVqaCommand>("vqa")
                    .WithDescription("VQA accuracy of predicted answers, as the official VQA evaluation computes it (overall, per answer type, per question type, per question).")
                    .WithExample("eval", "vqa", "--predictions", "results.json", "--annotations", "v2_mscoco_val2014_annotations.json", "--json");
            });
            c.AddCommand<InspectCommand>("inspect")
                .WithDescription("Show what a checkpoint folder holds: architecture, sizes, parameter counts, dtypes, tokenizer, and what is missing.")
                .WithExample("inspect", "models/blip2-opt-2.7b")
                .WithExample("inspect", "models/blip2-opt-2.7b", "--json");
            c.AddCommand<DumpCommand>("dump")
                .WithDescription("Run a checkpoint on input tensors and write every output under the golden fixtures' names, to diff against Python.")
                .WithExample("dump", "--model", "models/blip2-opt-2.7b", "--inputs", "inputs.safetensors", "--out", "outputs.safetensors");
            c.AddCommand<PreprocessCommand>("preprocess")
                .WithDescription("Turn images into the pixel_values tensor the model sees (PIL-exact bicubic resize, CLIP normalisation) and save it as safetensors.")
                .WithExample("preprocess", "photo.jpg", "--model", "models/blip2-opt-2.7b", "--out", "pixels.safetensors")
                .WithExample("preprocess", "a.png", "b.png", "--size", "224", "--out", "pixels.safetensors");
        });
        try
        {
            return app.Run(args);
        }
        catch (CommandParseException e)
        {
            return Fail(UsageMessage(e.Message, args), UsageError);
        }
        catch (CommandRuntimeException e)
        {
            return Fail(UsageMessage(e.Message, args), UsageError);
        }
        catch (Exception e) when (e is Blip2Exception or IOException or UnauthorizedAccessException or ArgumentException or KeyNotFoundException)
        {
            return Fail(e.Message, InputError);
        }
        catch (OperationCanceledException)
        {
            return Fail("interrupted.", 130);
        }
        catch (Exception e)
        {
            // Anything else is a bug in Blip2Sharp or its native engine: one line, not a stack dump.
            return Fail($"unexpected {e.GetType().Name}: {e.Message} (please report this)", 3);
        }
    }

    /// <summary>
    /// Spectre's conversion failure names a .NET type ("Failed to convert 'abc' to Nullable`1."): say instead which
    /// option got which value and what it takes.
    /// </summary>
    internal static string UsageMessage(string message, IReadOnlyList<string> args)
    {
        var m = System.Text.RegularExpressions.Regex.Match(message, "^Failed to convert '(?<value>.*)' to (?<type>[^ ]+)\\.$");
        if (!m.Success) return message;
        string value = m.Groups["value"].Value;
        int at = Enumerable.Range(0, args.Count).FirstOrDefault(i => args[i] == value && i > 0 && args[i - 1].StartsWith('-'), -1);
        string option = at > 0 ? args[at - 1] : "an option";
        return $"{option} takes a number; '{value}' is not one.";
    }

    private static int Fail(string message, int code)
    {
        Console.Error.WriteLine($"blip2: error: {message.ReplaceLineEndings(" ")}");
        return code;
    }

    /// <summary>Writes text to standard output verbatim (no markup interpretation).</summary>
    public static void Out(string text) => Console.Out.WriteLine(text);

    /// <summary>A warning on standard error, so that --json output stays parseable.</summary>
    public static void Warn(string text) => Console.Error.WriteLine($"blip2: warning: {text}");

    /// <summary>Spectre console bound to standard error, for tables and progress meant for a person.</summary>
    public static IAnsiConsole Human { get; } = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Out) });
}
