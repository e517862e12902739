namespace Blip2Sharp;

/// <summary>Base of every error Blip2Sharp raises on bad input; the message says what is wrong and where.</summary>
public class Blip2Exception : Exception
{
    public Blip2Exception(string message) : base(message) { }
    public Blip2Exception(string message, Exception inner) : base(message, inner) { }
}

/// <summary>A config.json (or another checkpoint JSON file) that is not JSON or lacks what it needs.</summary>
public sealed class InvalidConfigException : Blip2Exception
{
    public InvalidConfigException(string message) : base(message) { }
    public InvalidConfigException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>A model_type this library does not implement.</summary>
public sealed class UnknownModelTypeException(string message) : Blip2Exception(message);

/// <summary>A weights file that breaks its format (safetensors header, offsets, dtype, pickle).</summary>
public sealed class CheckpointFormatException : Blip2Exception
{
    public CheckpointFormatException(string message) : base(message) { }
    public CheckpointFormatException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>A checkpoint whose tensors do not match the model: missing, unexpected or mis-shaped names.</summary>
public sealed class CheckpointMismatchException(string message) : Blip2Exception(message);

/// <summary>A file that is not a decodable image, or is truncated or corrupt.</summary>
public sealed class ImageDecodeException : Blip2Exception
{
    public ImageDecodeException(string message) : base(message) { }
    public ImageDecodeException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>An image whose decoded size exceeds the configured pixel limit (a decompression bomb).</summary>
public sealed class ImageTooLargeException(string message) : Blip2Exception(message);
