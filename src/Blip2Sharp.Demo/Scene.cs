using System.Text.Json.Nodes;
using SkiaSharp;

namespace Blip2Sharp.Demo;

public enum Shape { Circle, Square, Triangle }

/// <summary>One object of a scene: shape, colour, size, and its place (column 0–2 left to right, row 0–2 top to bottom).</summary>
public sealed record SceneObject(Shape Shape, string Color, bool Large, int Column, int Row)
{
    public string Size => Large ? "large" : "small";
    public string ShapeName => Shape.ToString().ToLowerInvariant();
    public string Describe(bool withSize = true) => withSize ? $"{Size} {Color} {ShapeName}" : $"{Color} {ShapeName}";

    /// <summary>Where the object stands, as captions say it: "on the left", "in the middle", "on the right".</summary>
    public string Place => Column switch { 0 => "on the left", 1 => "in the middle", _ => "on the right" };

    /// <summary>The phrase captions use for this object: "a large red circle on the left".</summary>
    public string Phrase => $"a {Describe()} {Place}";
}

/// <summary>A synthetic scene: 1–3 objects on a plain background, with captions and question-answer pairs that describe it exactly.</summary>
public sealed record Scene(string Background, IReadOnlyList<SceneObject> Objects)
{
    public static readonly (string Name, SKColor Color)[] Colors =
    [
        ("red", new SKColor(220, 30, 30)), ("green", new SKColor(30, 170, 60)), ("blue", new SKColor(40, 70, 220)),
        ("yellow", new SKColor(235, 210, 20)), ("purple", new SKColor(140, 50, 170)), ("orange", new SKColor(245, 130, 20)),
    ];

    public static readonly (string Name, SKColor Color)[] Backgrounds =
    [
        ("white", new SKColor(250, 250, 250)), ("gray", new SKColor(200, 200, 200)), ("beige", new SKColor(235, 225, 200)), ("light blue", new SKColor(210, 225, 240)),
    ];

    private static readonly string[] Numbers = ["zero", "one", "two", "three"];

    /// <summary>Objects ordered left to right (then top to bottom), as captions list them.</summary>
    public IReadOnlyList<SceneObject> LeftToRight => [.. Objects.OrderBy(o => o.Column).ThenBy(o => o.Row)];

    /// <summary>
    /// The colour-shape pair no training scene holds (a compositional hold-out): every scene the demo trains on,
    /// images and texts alike, comes from <see cref="Random"/>, which never draws it; <see cref="RandomHeldOut"/>
    /// draws scenes that hold it, to measure whether the model puts together what it learned apart.
    /// </summary>
    public static readonly (string Color, Shape Shape) HeldOut = ("purple", Shape.Triangle);

    public bool HasHeldOut => Objects.Any(IsHeldOut);

    private static bool IsHeldOut(SceneObject o) => o.Color == HeldOut.Color && o.Shape == HeldOut.Shape;

    /// <summary>
    /// A random scene: distinct columns, so that "left of" is always defined; objects of one scene differ in shape or
    /// colour; never the held-out pair.
    /// </summary>
    public static Scene Random(Random rng) => Draw(rng, heldOutAt: -1);

    /// <summary>A random scene with the held-out pair as one of its objects (the one at a random place in the draw).</summary>
    public static Scene RandomHeldOut(Random rng) => Draw(rng, heldOutAt: rng.Next(3));

    private static Scene Draw(Random rng, int heldOutAt)
    {
        int count = rng.Next(1, 4);
        heldOutAt = heldOutAt < 0 ? -1 : heldOutAt % count;
        var columns = new[] { 0, 1, 2 }.OrderBy(_ => rng.Next()).Take(count).ToList();
        var objects = new List<SceneObject>();
        foreach (int column in columns)
        {
            SceneObject o;
            if (objects.Count == heldOutAt)
                o = new SceneObject(HeldOut.Shape, HeldOut.Color, rng.Next(2) == 1, column, rng.Next(3));
            else
                do
                {
                    o = new SceneObject((Shape)rng.Next(3), Colors[rng.Next(Colors.Length)].Name, rng.Next(2) == 1, column,
                        rng.Next(3));
                }
                while (IsHeldOut(o) || objects.Any(x => x.Shape == o.Shape && x.Color == o.Color));
            objects.Add(o);
        }
        return new Scene(Backgrounds[rng.Next(Backgrounds.Length)].Name, objects);
    }

    /// <summary>Anti-aliased rendering at size × size pixels.</summary>
    public byte[] RenderPng(int size)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(Backgrounds.First(b => b.Name == Background).Color);
            float cell = size / 3f;
            foreach (var o in Objects)
            {
                using var paint = new SKPaint { Color = Colors.First(c => c.Name == o.Color).Color, IsAntialias = true, Style = SKPaintStyle.Fill };
                float cx = (o.Column + 0.5f) * cell, cy = (o.Row + 0.5f) * cell;
                float r = cell * (o.Large ? 0.45f : 0.25f);
                switch (o.Shape)
                {
                    case Shape.Circle: canvas.DrawCircle(cx, cy, r, paint); break;
                    case Shape.Square: canvas.DrawRect(cx - r, cy - r, 2 * r, 2 * r, paint); break;
                    default:
                        using (var path = new SKPath())
                        {
                            path.MoveTo(cx, cy - r);
                            path.LineTo(cx + r, cy + r);
                            path.LineTo(cx - r, cy + r);
                            path.Close();
                            canvas.DrawPath(path, paint);
                        }
                        break;
                }
            }
        }
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    /// <summary>
    /// Captions in three phrasings; each names every object (size, colour, shape, column) from left to right and the
    /// background, so a caption identifies its scene up to the objects' rows, which no caption mentions. The third
    /// starts with the number of objects ("two objects on a white background: …"), as people say it.
    /// </summary>
    public List<string> Captions()
    {
        var o = LeftToRight;
        string list = o.Count == 1 ? o[0].Phrase : string.Join(", ", o.Take(o.Count - 1).Select(x => x.Phrase)) + " and " + o[^1].Phrase;
        string counted = $"{Numbers[o.Count]} {(o.Count == 1 ? "object" : "objects")} on a {Background} background: {list}";
        return [$"{list}, on a {Background} background", $"a {Background} background with {list}", counted];
    }

    /// <summary>
    /// What a caption pins down, the scene's identity for keeping test scenes apart from training scenes: background,
    /// then each object's size, colour, shape and column (not its row, which no caption mentions), the objects sorted
    /// as strings: "white|large red circle 0|small blue square 2". The format of a demo model's train_keys.txt.
    /// </summary>
    public string Key => Background + "|" + string.Join("|",
        Objects.Select(x => $"{x.Describe()} {x.Column}").Order(StringComparer.Ordinal));

    /// <summary>Questions about colour, shape, count, position and existence, with their one-word or two-word answers.</summary>
    public List<(string Kind, string Question, string Answer)> Questions(Random rng)
    {
        var qa = new List<(string, string, string)>();
        var o = LeftToRight;
        qa.Add(("count", "how many objects are there?", Numbers[o.Count]));
        foreach (var x in o)
        {
            if (o.Count(y => y.Shape == x.Shape) == 1) qa.Add(("color", $"what color is the {x.ShapeName}?", x.Color));
            if (o.Count(y => y.Color == x.Color) == 1) qa.Add(("shape", $"what shape is the {x.Color} object?", x.ShapeName));
        }
        if (o.Count > 1)
        {
            qa.Add(("position", "what is on the left?", o[0].Describe(false)));
            qa.Add(("position", "what is on the right?", o[^1].Describe(false)));
        }
        var present = o[rng.Next(o.Count)];
        qa.Add(("existence", $"is there a {present.Describe(false)}?", "yes"));
        string color;
        Shape shape;
        do
        {
            color = Colors[rng.Next(Colors.Length)].Name;
            shape = (Shape)rng.Next(3);
        }
        while (o.Any(x => x.Color == color && x.Shape == shape));
        qa.Add(("existence", $"is there a {color} {shape.ToString().ToLowerInvariant()}?", "no"));
        return qa;
    }

    /// <summary>A scene as <see cref="ToJson"/> writes it (the *_scenes.jsonl lines).</summary>
    public static Scene FromJson(JsonObject json) => new(json["background"]!.GetValue<string>(),
        [.. json["objects"]!.AsArray().Select(o => new SceneObject(
            Enum.Parse<Shape>(o!["shape"]!.GetValue<string>(), ignoreCase: true), o["color"]!.GetValue<string>(),
            o["size"]!.GetValue<string>() == "large", o["column"]!.GetValue<int>(), o["row"]!.GetValue<int>()))]);

    public JsonObject ToJson() => new()
    {
        ["background"] = Background,
        ["objects"] = new JsonArray([.. Objects.Select(x => (JsonNode)new JsonObject
        {
            ["shape"] = x.ShapeName, ["color"] = x.Color, ["size"] = x.Size, ["column"] = x.Column, ["row"] = x.Row,
        })]),
    };
}
