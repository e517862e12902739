using System.ComponentModel;
using Blip2Sharp.Server;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Blip2Sharp.Cli.Commands;

public sealed class ServeCommand : AsyncCommand<ServeCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("-m|--model <DIR>")]
        [Description("The generation checkpoint served at /v1/chat/completions. Default: the built-in demo model, with its retrieval model.")]
        public string? Model { get; init; }

        [CommandOption("--retrieval-model <DIR>")]
        [Description("A retrieval checkpoint (blip2-itm-vit-g) for /v1/embeddings, /v1/match, /v1/search and /v1/index. " +
            "Default: the demo's when --model is not given, else none.")]
        public string? RetrievalModel { get; init; }

        [CommandOption("--db <FILE>")]
        [Description("The image index (made by `blip2 index`, or a new file) that /v1/search reads and /v1/index adds to.")]
        public string? Db { get; init; }

        [CommandOption("--host <ADDRESS>")]
        [Description("The address to listen on (0.0.0.0 for every interface).")]
        [DefaultValue("127.0.0.1")]
        public string Host { get; init; } = "127.0.0.1";

        [CommandOption("-p|--port <PORT>")]
        [Description("The port (0: any free one; the address is printed when listening).")]
        [DefaultValue(8080)]
        public int Port { get; init; } = 8080;

        [CommandOption("--api-key <KEY>")]
        [Description("Require Authorization: Bearer KEY on every route but /health and the page at /.")]
        public string? ApiKey { get; init; }

        [CommandOption("--api-key-file <FILE>")]
        [Description("Read the key from a file (its first line), keeping it out of the process list.")]
        public string? ApiKeyFile { get; init; }

        [CommandOption("--quantize <KIND>")]
        [Description("int8: weight-only int8 for the OPT language model's decoding.")]
        public string? Quantize { get; init; }

        [CommandOption("--max-batch <N>")]
        [Description("Most sequences decoded together in one step (beams and returned sequences count one each).")]
        [DefaultValue(16)]
        public int MaxBatch { get; init; } = 16;

        [CommandOption("--max-queue <N>")]
        [Description("Most requests waiting for a slot; more are answered 429 with Retry-After.")]
        [DefaultValue(64)]
        public int MaxQueue { get; init; } = 64;

        [CommandOption("--max-body-mb <N>")]
        [Description("The largest request body; larger ones are answered 413.")]
        [DefaultValue(20)]
        public int MaxBodyMb { get; init; } = 20;

        [CommandOption("--max-tokens <N>")]
        [Description("The largest max_tokens a request may ask for.")]
        [DefaultValue(512)]
        public int MaxTokens { get; init; } = 512;

        [CommandOption("--image-url-host <HOST>")]
        [Description("Allow http(s) image URLs from this host (repeatable); otherwise images must be data URLs.")]
        public string[] ImageUrlHosts { get; init; } = [];

        [CommandOption("--request-timeout <SECONDS>")]
        [Description("A generation running longer is cancelled and answered 504.")]
        [DefaultValue(300)]
        public int RequestTimeout { get; init; } = 300;

        [CommandOption("--shutdown-timeout <SECONDS>")]
        [Description("On SIGTERM / Ctrl-C, how long requests in flight may take to finish before they are cancelled.")]
        [DefaultValue(20)]
        public int ShutdownTimeout { get; init; } = 20;

        public override ValidationResult Validate() =>
            Port is < 0 or > 65535 ? ValidationResult.Error("--port must be between 0 and 65535.")
            : MaxBatch < 1 ? ValidationResult.Error("--max-batch must be at least 1.")
            : MaxQueue < 0 ? ValidationResult.Error("--max-queue cannot be negative.")
            : MaxBodyMb < 1 ? ValidationResult.Error("--max-body-mb must be at least 1.")
            : MaxTokens < 1 ? ValidationResult.Error("--max-tokens must be at least 1.")
            : RequestTimeout < 1 || ShutdownTimeout < 0
                ? ValidationResult.Error("--request-timeout must be at least 1 and --shutdown-timeout at least 0.")
            : ApiKey is not null && ApiKeyFile is not null
                ? ValidationResult.Error("give --api-key or --api-key-file, not both.")
            : Quantize is not null and not "int8" ? ValidationResult.Error("--quantize takes int8.")
            : ValidationResult.Success();
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings,
        CancellationToken cancellationToken)
    {
        string model = settings.Model ?? DemoModel.Generation;
        string? retrieval = settings.RetrievalModel ?? (settings.Model is null ? DemoModel.Retrieval : null);
        DemoModel.NoteIfDefault(model);
        CheckpointFolderExists(model, "--model");
        if (retrieval is not null) CheckpointFolderExists(retrieval, "--retrieval-model");
        string? key = settings.ApiKey;
        if (settings.ApiKeyFile is { } file)
        {
            key = File.ReadLines(file).FirstOrDefault()?.Trim();
            if (string.IsNullOrEmpty(key)) throw new ArgumentException($"{file}: the key file is empty.");
        }
        var options = new ServerOptions
        {
            Model = model,
            ModelName = settings.Model is null ? "blip2-demo" : null,
            RetrievalModel = retrieval,
            RetrievalModelName = settings.Model is null && settings.RetrievalModel is null ? "blip2-demo-retrieval"
                : null,
            Db = settings.Db,
            Host = settings.Host,
            Port = settings.Port,
            ApiKey = key,
            QuantizeInt8 = settings.Quantize == "int8",
            MaxBatch = settings.MaxBatch,
            MaxQueue = settings.MaxQueue,
            MaxBodyMb = settings.MaxBodyMb,
            MaxTokensCap = settings.MaxTokens,
            ImageUrlHosts = settings.ImageUrlHosts,
            RequestTimeout = TimeSpan.FromSeconds(settings.RequestTimeout),
            ShutdownTimeout = TimeSpan.FromSeconds(settings.ShutdownTimeout),
            Log = line => Console.Error.WriteLine($"blip2: {line}"),
        };
        return await Blip2Server.RunAsync(options, cancellationToken);
    }

    private static void CheckpointFolderExists(string folder, string option)
    {
        if (File.Exists(folder)) throw new ArgumentException($"{option} {folder} is a file; give the checkpoint's folder.");
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"{option} {folder}: folder not found.");
    }
}
