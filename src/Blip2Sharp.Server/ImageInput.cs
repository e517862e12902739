using Blip2Sharp.Processing;

namespace Blip2Sharp.Server;

/// <summary>
/// Images as requests carry them: data URLs (data:image/…;base64,…), decoded with the library's limits (a corrupt
/// file or a decompression bomb is a 400); http(s) URLs only from hosts the operator allowed (--image-url-host).
/// </summary>
public sealed class ImageInput(ServerOptions options, ImageDecodeOptions decode, IHttpClientFactory? http = null)
{
    public async Task<RgbImage> DecodeAsync(string url, string param, CancellationToken ct)
    {
        byte[] bytes;
        if (url.StartsWith("data:", StringComparison.OrdinalIgnoreCase)) bytes = DataUrlBytes(url, param);
        else if (Uri.TryCreate(url, UriKind.Absolute, out var uri) && (uri.Scheme == "http" || uri.Scheme == "https"))
            bytes = await FetchAsync(uri, param, ct);
        else throw ApiException.BadRequest("an image must be a data URL (data:image/png;base64,…).", param,
            "invalid_image_url");
        try
        {
            return ImageDecoder.Decode(bytes, param, decode);
        }
        catch (Blip2Exception e)
        {
            throw ApiException.BadRequest($"the image could not be used: {e.Message}", param, "invalid_image");
        }
    }

    private static byte[] DataUrlBytes(string url, string param)
    {
        int comma = url.IndexOf(',');
        string header = comma < 0 ? url : url[..comma];
        if (comma < 0 || !header.StartsWith("data:image/", StringComparison.OrdinalIgnoreCase)
            || !header.EndsWith(";base64", StringComparison.OrdinalIgnoreCase))
            throw ApiException.BadRequest("an image data URL must read data:image/<format>;base64,<data>.", param,
                "invalid_image_url");
        try
        {
            return Convert.FromBase64String(url[(comma + 1)..]);
        }
        catch (FormatException)
        {
            throw ApiException.BadRequest("the image data URL is not valid base64.", param, "invalid_image_url");
        }
    }

    private async Task<byte[]> FetchAsync(Uri uri, string param, CancellationToken ct)
    {
        if (http is null || !options.ImageUrlHosts.Contains(uri.Host, StringComparer.OrdinalIgnoreCase))
            throw ApiException.BadRequest($"the server does not fetch image URLs ({uri.Host}): send the image as a data URL " +
                "(data:image/png;base64,…), or start the server with --image-url-host for that host.", param,
                    "image_url_not_allowed");
        using var client = http.CreateClient("images");
        using var response = await client.GetAsync(uri, HttpCompletionOption.ResponseHeadersRead, ct);
        if (!response.IsSuccessStatusCode)
            throw ApiException.BadRequest($"fetching the image gave HTTP {(int)response.StatusCode}.", param,
                "image_url_failed");
        long limit = options.MaxBodyMb * 1024L * 1024L;
        await using var stream = await response.Content.ReadAsStreamAsync(ct);
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        while ((read = await stream.ReadAsync(chunk, ct)) > 0)
        {
            buffer.Write(chunk, 0, read);
            if (buffer.Length > limit) throw new ApiException(413,
                $"the image at the URL is larger than {options.MaxBodyMb} MB.", param: param);
        }
        return buffer.ToArray();
    }
}
