using Microsoft.Data.Sqlite;
using static TorchSharp.torch;

namespace Blip2Sharp.Tasks;

/// <summary>One stored image: its path (relative to the indexed folder), content hash and embedding [Q, D].</summary>
public sealed record StoredImage(string Path, string Hash);

/// <summary>
/// Where image embeddings live. The commands use only this interface, so a server-grade vector store can replace
/// the embedded SQLite file without touching them.
/// </summary>
public interface IVectorStore : IDisposable
{
    /// <summary>What made the vectors (model and preprocessing); null for an empty store.</summary>
    string? Fingerprint { get; }
    void SetFingerprint(string fingerprint);
    IReadOnlyDictionary<string, StoredImage> Entries();
    /// <summary>Writes a batch of embeddings [B, Q, D] and removals atomically: all of it or none.</summary>
    void Commit(IReadOnlyList<StoredImage> upserts, Tensor? embeds, IReadOnlyList<string> removals);
    /// <summary>Every stored embedding as one float32 tensor [N, Q, D] with the paths in row order.</summary>
    (List<string> Paths, Tensor Embeds) LoadAll();
}

/// <summary>
/// The default store: one portable SQLite file (WAL journal), vectors as float16 blobs. A batch is one transaction,
/// so an interrupted indexing run keeps every batch committed before it and never a half-written one.
/// </summary>
public sealed class SqliteVectorStore : IVectorStore
{
    private readonly SqliteConnection _db;

    public string? Fingerprint { get; private set; }

    public SqliteVectorStore(string path)
    {
        string? dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        _db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadWriteCreate, Pooling = false }.ToString());
        try
        {
            _db.Open();
            Exec("PRAGMA journal_mode=WAL;");
            Exec("PRAGMA synchronous=NORMAL;");
            Exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);");
            Exec("CREATE TABLE IF NOT EXISTS images (path TEXT PRIMARY KEY, hash TEXT NOT NULL, q INTEGER NOT NULL, d INTEGER NOT NULL, vec BLOB NOT NULL);");
            using var cmd = _db.CreateCommand();
            cmd.CommandText = "SELECT value FROM meta WHERE key = 'fingerprint';";
            Fingerprint = cmd.ExecuteScalar() as string;
        }
        catch (SqliteException e)
        {
            _db.Dispose();
            throw new Blip2Exception($"{path}: not a Blip2Sharp index database ({e.Message}).", e);
        }
    }

    private void Exec(string sql)
    {
        using var cmd = _db.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    public void SetFingerprint(string fingerprint)
    {
        using var cmd = _db.CreateCommand();
        cmd.CommandText = "INSERT INTO meta (key, value) VALUES ('fingerprint', $v) ON CONFLICT(key) DO UPDATE SET value = $v;";
        cmd.Parameters.AddWithValue("$v", fingerprint);
        cmd.ExecuteNonQuery();
        Fingerprint = fingerprint;
    }

    public IReadOnlyDictionary<string, StoredImage> Entries()
    {
        var result = new Dictionary<string, StoredImage>(StringComparer.Ordinal);
        using var cmd = _db.CreateCommand();
        cmd.CommandText = "SELECT path, hash FROM images;";
        using var r = cmd.ExecuteReader();
        while (r.Read()) result[r.GetString(0)] = new StoredImage(r.GetString(0), r.GetString(1));
        return result;
    }

    public void Commit(IReadOnlyList<StoredImage> upserts, Tensor? embeds, IReadOnlyList<string> removals)
    {
        using var tx = _db.BeginTransaction();
        if (upserts.Count > 0)
        {
            if (embeds is null || embeds.shape[0] != upserts.Count) throw new ArgumentException("one embedding per stored image is needed.");
            using var scope = NewDisposeScope(); // roots the chain's intermediates while native calls read them (see AdamW.ZeroGrad)
            var half = embeds.to(ScalarType.Float16).cpu().contiguous();
            long q = embeds.shape[1], d = embeds.shape[2];
            var bytes = half.bytes.ToArray();
            int rowBytes = (int)(q * d * 2);
            using var cmd = _db.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = "INSERT INTO images (path, hash, q, d, vec) VALUES ($p, $h, $q, $d, $v) ON CONFLICT(path) DO UPDATE SET hash = $h, q = $q, d = $d, vec = $v;";
            var p = cmd.Parameters.Add("$p", SqliteType.Text);
            var h = cmd.Parameters.Add("$h", SqliteType.Text);
            cmd.Parameters.AddWithValue("$q", q);
            cmd.Parameters.AddWithValue("$d", d);
            var v = cmd.Parameters.Add("$v", SqliteType.Blob);
            for (int i = 0; i < upserts.Count; i++)
            {
                p.Value = upserts[i].Path;
                h.Value = upserts[i].Hash;
                v.Value = bytes.AsSpan(i * rowBytes, rowBytes).ToArray();
                cmd.ExecuteNonQuery();
            }
        }
        if (removals.Count > 0)
        {
            using var del = _db.CreateCommand();
            del.Transaction = tx;
            del.CommandText = "DELETE FROM images WHERE path = $p;";
            var p = del.Parameters.Add("$p", SqliteType.Text);
            foreach (var path in removals)
            {
                p.Value = path;
                del.ExecuteNonQuery();
            }
        }
        tx.Commit();
    }

    public (List<string> Paths, Tensor Embeds) LoadAll()
    {
        var paths = new List<string>();
        using var count = _db.CreateCommand();
        count.CommandText = "SELECT COUNT(*), MAX(q), MAX(d) FROM images;";
        long n, q, d;
        using (var r = count.ExecuteReader())
        {
            r.Read();
            n = r.GetInt64(0);
            if (n == 0) return (paths, zeros(0, 0, 0));
            q = r.GetInt64(1);
            d = r.GetInt64(2);
        }
        // Read in chunks (a single tensor's byte span is limited to 2 GiB), converting each to float32.
        const int ChunkRows = 8192;
        int rowBytes = (int)(q * d * 2);
        var chunks = new List<Tensor>();
        using var cmd = _db.CreateCommand();
        cmd.CommandText = "SELECT path, vec FROM images ORDER BY path;";
        using (var r = cmd.ExecuteReader())
        {
            Tensor? half = null;
            int row = 0;
            while (r.Read())
            {
                if (half is null || row == ChunkRows)
                {
                    if (half is not null) { chunks.Add(half.to(ScalarType.Float32)); half.Dispose(); }
                    half = empty([Math.Min(ChunkRows, n - paths.Count), q, d], ScalarType.Float16);
                    row = 0;
                }
                paths.Add(r.GetString(0));
                using var blob = r.GetStream(1);
                blob.ReadExactly(half.bytes.Slice(row * rowBytes, rowBytes));
                row++;
            }
            if (half is not null)
            {
                using (var used = half.narrow(0, 0, row)) chunks.Add(used.to(ScalarType.Float32)); // the view in a local: rooted during to()
                half.Dispose();
            }
        }
        var all = chunks.Count == 1 ? chunks[0] : cat(chunks, 0); // [N, Q, D]
        if (chunks.Count > 1) foreach (var c in chunks) c.Dispose();
        return (paths, all);
    }

    public void Dispose() => _db.Dispose();
}
