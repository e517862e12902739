using Blip2Sharp.Cli;

return Blip2Cli.Run(args);
