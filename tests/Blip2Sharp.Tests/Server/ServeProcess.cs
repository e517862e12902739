using System.Diagnostics;
using System.Net.Http.Headers;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;

namespace Blip2Sharp.Tests.Server;

/// <summary>
/// A real `blip2 serve` process (the program built next to the tests) on a free loopback port, ready when its
/// /health answers 200. Disposing sends SIGTERM, as a process manager would, and waits for the exit.
/// </summary>
public sealed partial class ServeProcess : IDisposable
{
    private readonly Process _process;
    private readonly List<string> _stderr = [];

    public Uri BaseAddress { get; }
    public HttpClient Http { get; }
    public int Pid => _process.Id;
    public string? ApiKey { get; }

    public ServeProcess(params string[] args)
    {
        int at = Array.IndexOf(args, "--api-key");
        ApiKey = at >= 0 ? args[at + 1] : null;
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "blip2.dll"));
        psi.ArgumentList.Add("serve");
        psi.ArgumentList.Add("--port");
        psi.ArgumentList.Add("0");
        foreach (var a in args) psi.ArgumentList.Add(a);
        _process = Process.Start(psi)!;
        var listening = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (_stderr) _stderr.Add(e.Data);
            if (Listening().Match(e.Data) is { Success: true } m) listening.TrySetResult(new Uri(m.Groups[1].Value));
        };
        _process.OutputDataReceived += (_, _) => { };
        _process.BeginErrorReadLine();
        _process.BeginOutputReadLine();
        if (!listening.Task.Wait(TimeSpan.FromSeconds(60)))
        {
            Kill();
            throw new TimeoutException($"blip2 serve did not start listening: {Stderr}");
        }
        BaseAddress = listening.Task.Result;
        Http = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromMinutes(3) };
        if (ApiKey is not null) Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer",
            ApiKey);
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                if (Http.GetAsync("/health").Result.IsSuccessStatusCode) break;
            }
            catch (HttpRequestException)
            {
            }
            if (deadline.Elapsed > TimeSpan.FromSeconds(90) || _process.HasExited)
            {
                Kill();
                throw new TimeoutException($"blip2 serve did not become ready: {Stderr}");
            }
            Thread.Sleep(100);
        }
    }

    [GeneratedRegex(@"listening on (http://[^ ,]+)")]
    private static partial Regex Listening();

    public string Stderr
    {
        get { lock (_stderr) return string.Join("\n", _stderr); }
    }

    /// <summary>Resident memory of the server process, in bytes (VmRSS).</summary>
    public long ResidentBytes()
    {
        var line = File.ReadLines($"/proc/{_process.Id}/status").First(l => l.StartsWith("VmRSS:"));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);

    /// <summary>Sends SIGTERM and waits for the exit; returns the exit code.</summary>
    public int Terminate(TimeSpan wait)
    {
        if (!_process.HasExited) kill(_process.Id, 15);
        if (!_process.WaitForExit(wait))
        {
            Kill();
            throw new TimeoutException($"blip2 serve did not exit within {wait} of SIGTERM: {Stderr}");
        }
        _process.WaitForExit();
        return _process.ExitCode;
    }

    private void Kill()
    {
        try
        {
            _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
        }
    }

    public void Dispose()
    {
        try
        {
            Terminate(TimeSpan.FromSeconds(30));
        }
        finally
        {
            Http?.Dispose();
            _process.Dispose();
        }
    }
}
