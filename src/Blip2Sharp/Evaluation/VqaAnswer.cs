namespace Blip2Sharp.Evaluation;

/// <summary>
/// The answer normalisation of the official VQA evaluation (GT-Vision-Lab/VQA,
/// PythonEvaluationTools/vqaEvaluation/vqaEval.py at a013f00, processPunctuation and processDigitArticle), with its
/// quirks: a punctuation mark is deleted when it touches a space anywhere in the answer (or the answer holds a digit
/// comma digit), otherwise replaced by a space; at most 32 periods not followed by a digit are removed (re.UNICODE,
/// 32, is passed where re.sub takes its count); number words become digits, articles go, and contractions written
/// without an apostrophe get it back (keys with capitals, "Im", never match a lowered answer, as in the reference).
/// </summary>
public static class VqaAnswer
{
    private static readonly string[] Punctuation =
        [";", "/", "[", "]", "\"", "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"];

    private static readonly Dictionary<string, string> NumberWords = new()
    {
        ["none"] = "0", ["zero"] = "0", ["one"] = "1", ["two"] = "2", ["three"] = "3", ["four"] = "4", ["five"] = "5",
        ["six"] = "6", ["seven"] = "7", ["eight"] = "8", ["nine"] = "9", ["ten"] = "10",
    };

    private static readonly HashSet<string> Articles = ["a", "an", "the"];

    private static readonly Dictionary<string, string> Contractions = new()
    {
        ["aint"] = "ain't", ["arent"] = "aren't", ["cant"] = "can't", ["couldve"] = "could've",
        ["couldnt"] = "couldn't", ["couldn'tve"] = "couldn't've", ["couldnt've"] = "couldn't've",
        ["didnt"] = "didn't", ["doesnt"] = "doesn't", ["dont"] = "don't", ["hadnt"] = "hadn't",
        ["hadnt've"] = "hadn't've", ["hadn'tve"] = "hadn't've", ["hasnt"] = "hasn't", ["havent"] = "haven't",
        ["hed"] = "he'd", ["hed've"] = "he'd've", ["he'dve"] = "he'd've", ["hes"] = "he's", ["howd"] = "how'd",
        ["howll"] = "how'll", ["hows"] = "how's", ["Id've"] = "I'd've", ["I'dve"] = "I'd've", ["Im"] = "I'm",
        ["Ive"] = "I've", ["isnt"] = "isn't", ["itd"] = "it'd", ["itd've"] = "it'd've", ["it'dve"] = "it'd've",
        ["itll"] = "it'll", ["let's"] = "let's", ["maam"] = "ma'am", ["mightnt"] = "mightn't",
        ["mightnt've"] = "mightn't've", ["mightn'tve"] = "mightn't've", ["mightve"] = "might've",
        ["mustnt"] = "mustn't", ["mustve"] = "must've", ["neednt"] = "needn't", ["notve"] = "not've",
        ["oclock"] = "o'clock", ["oughtnt"] = "oughtn't", ["ow's'at"] = "'ow's'at", ["'ows'at"] = "'ow's'at",
        ["'ow'sat"] = "'ow's'at", ["shant"] = "shan't", ["shed've"] = "she'd've", ["she'dve"] = "she'd've",
        ["she's"] = "she's", ["shouldve"] = "should've", ["shouldnt"] = "shouldn't", ["shouldnt've"] = "shouldn't've",
        ["shouldn'tve"] = "shouldn't've", ["somebody'd"] = "somebodyd", ["somebodyd've"] = "somebody'd've",
        ["somebody'dve"] = "somebody'd've", ["somebodyll"] = "somebody'll", ["somebodys"] = "somebody's",
        ["someoned"] = "someone'd", ["someoned've"] = "someone'd've", ["someone'dve"] = "someone'd've",
        ["someonell"] = "someone'll", ["someones"] = "someone's", ["somethingd"] = "something'd",
        ["somethingd've"] = "something'd've", ["something'dve"] = "something'd've", ["somethingll"] = "something'll",
        ["thats"] = "that's", ["thered"] = "there'd", ["thered've"] = "there'd've", ["there'dve"] = "there'd've",
        ["therere"] = "there're", ["theres"] = "there's", ["theyd"] = "they'd", ["theyd've"] = "they'd've",
        ["they'dve"] = "they'd've", ["theyll"] = "they'll", ["theyre"] = "they're", ["theyve"] = "they've",
        ["twas"] = "'twas", ["wasnt"] = "wasn't", ["wed've"] = "we'd've", ["we'dve"] = "we'd've", ["weve"] = "we've",
        ["werent"] = "weren't", ["whatll"] = "what'll", ["whatre"] = "what're", ["whats"] = "what's",
        ["whatve"] = "what've", ["whens"] = "when's", ["whered"] = "where'd", ["wheres"] = "where's",
        ["whereve"] = "where've", ["whod"] = "who'd", ["whod've"] = "who'd've", ["who'dve"] = "who'd've",
        ["wholl"] = "who'll", ["whos"] = "who's", ["whove"] = "who've", ["whyll"] = "why'll", ["whyre"] = "why're",
        ["whys"] = "why's", ["wont"] = "won't", ["wouldve"] = "would've", ["wouldnt"] = "wouldn't",
        ["wouldnt've"] = "wouldn't've", ["wouldn'tve"] = "wouldn't've", ["yall"] = "y'all", ["yall'll"] = "y'all'll",
        ["y'allll"] = "y'all'll", ["yall'd've"] = "y'all'd've", ["y'alld've"] = "y'all'd've",
        ["y'all'dve"] = "y'all'd've", ["youd"] = "you'd", ["youd've"] = "you'd've", ["you'dve"] = "you'd've",
        ["youll"] = "you'll", ["youre"] = "you're", ["youve"] = "you've",
    };

    /// <summary>processPunctuation, then processDigitArticle, after the newline/tab/strip clean-up.</summary>
    public static string Normalize(string answer)
    {
        string text = answer.Replace('\n', ' ').Replace('\t', ' ').Trim();
        return DigitsAndArticles(StripPunctuation(text));
    }

    /// <summary>Whether a generated answer equals an expected one once both are normalised.</summary>
    public static bool Matches(string generated, string expected) => Normalize(generated) == Normalize(expected);

    internal static string StripPunctuation(string text)
    {
        bool digitCommaDigit = HasDigitCommaDigit(text);
        string output = text;
        foreach (string p in Punctuation)
        {
            bool touchesSpace = text.Contains(p + " ", StringComparison.Ordinal)
                || text.Contains(" " + p, StringComparison.Ordinal);
            output = output.Replace(p, touchesSpace || digitCommaDigit ? "" : " ", StringComparison.Ordinal);
        }
        // periodStrip "(?!<=\d)(\.)(?!\d)": its first look-ahead ("<=" then a digit) can never hold at a '.', so a
        // period not followed by a digit; re.sub(pattern, "", text, re.UNICODE) removes at most 32 of them.
        var sb = new System.Text.StringBuilder(output.Length);
        int removed = 0;
        for (int i = 0; i < output.Length; i++)
        {
            bool nextIsDigit = i + 1 < output.Length && char.IsDigit(output[i + 1]);
            if (output[i] == '.' && !nextIsDigit && removed < 32) removed++;
            else sb.Append(output[i]);
        }
        return sb.ToString();
    }

    internal static string DigitsAndArticles(string text)
    {
        var words = text.ToLowerInvariant().Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)
            .Select(w => NumberWords.GetValueOrDefault(w, w)).Where(w => !Articles.Contains(w))
            .Select(w => Contractions.GetValueOrDefault(w, w));
        return string.Join(' ', words);
    }

    private static bool HasDigitCommaDigit(string text)
    {
        for (int i = 1; i + 1 < text.Length; i++)
            if (text[i] == ',' && char.IsDigit(text[i - 1]) && char.IsDigit(text[i + 1])) return true;
        return false;
    }
}
