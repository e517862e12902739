// Benchmarks of the real-size architectures come with the network (see the issues); this entry point lists them.
Console.WriteLine("Blip2Sharp benchmarks: none yet.");
return 0;
