//! The on-disk caches: compiled modules, and policy outputs ([`ResultCache`]).
//!
//! A module entry is one file, `<cache_dir>/policy-modules/<key>.cwasm`, where `key` is the
//! blake3 of the module's bytes together with wasmtime's engine compatibility hash (wasmtime
//! version, target, compiler settings). Its contents are a magic line, a tag, and the payload:
//! the bytes `Module::serialize` produced.
//!
//! **Entries are authenticated.** The tag is a MAC (blake3 in keyed mode) of the entry's kind, its
//! key and its payload, under a secret [`CacheKey`] that lives outside the cache folder (see
//! [`CacheDir::for_user`]). A cache folder is something a CI system restores from earlier runs,
//! possibly of a hostile branch; whoever wrote it without the key cannot produce an entry this
//! host accepts, nor move a genuine entry to another key (the key is inside the MAC). A module
//! entry is machine code that wasmtime would run, and a result entry decides findings, so an
//! unauthenticated entry is never deserialized or served: it is a miss, rebuilt and
//! overwritten.
//!
//! Entries are written to a temporary file in the same folder and renamed into place, so two
//! kiln processes compiling the same policy at once both succeed and the last rename wins with
//! a complete file. A reader never sees half a file; a torn write after a power loss, a
//! truncated or garbage file, or an entry from an incompatible wasmtime is detected, ignored,
//! rebuilt and overwritten. Failing to write the cache never fails a load.
//!
//! Both caches (compiled modules, and policy outputs: [`ResultCache`]) are pruned: a hit marks
//! its entry used (its modification time, at most once a day), and at most once a day a host
//! removes, on a thread of its own, the entries nobody used for [`KEEP_UNUSED`].

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use wasmtime::{Engine, Module};

/// The secret that authenticates cache entries: 32 random bytes, kept outside the cache
/// folder, made once per machine (and user) by [`CacheKey::load_or_create`].
#[derive(Clone, PartialEq, Eq)]
pub struct CacheKey([u8; 32]);

impl std::fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheKey(…)")
    }
}

impl CacheKey {
    /// A key from its bytes (tests, or a key a caller keeps elsewhere).
    pub fn from_bytes(bytes: [u8; 32]) -> CacheKey {
        CacheKey(bytes)
    }

    /// A fresh random key.
    pub fn random() -> io::Result<CacheKey> {
        let mut bytes = [0; 32];
        getrandom::fill(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
        Ok(CacheKey(bytes))
    }

    /// The key stored at `path` (64 hex digits), or a new random one written there (the file
    /// created with mode 0600, its folder 0700). Two processes creating it at once agree: the
    /// file is linked into place only if none exists, and the loser reads the winner's. A
    /// file that is not a valid key is replaced, which only invalidates the cache.
    pub fn load_or_create(path: &Path) -> io::Result<CacheKey> {
        if let Some(key) = read_key(path)? {
            return Ok(key);
        }
        let key = CacheKey::random()?;
        let dir = path.parent().unwrap_or(Path::new("."));
        create_private_dir(dir)?;
        let tmp = dir.join(format!(
            ".cache-key.{}.{}.tmp",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let mut file = private_file(&tmp)?;
            file.write_all(hex(&key.0).as_bytes())?;
            file.sync_all()?;
            match fs::hard_link(&tmp, path) {
                Ok(()) => Ok(key.clone()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match read_key(path)? {
                    Some(theirs) => Ok(theirs),
                    // Not a key: replace it.
                    None => fs::rename(&tmp, path).map(|()| key.clone()),
                },
                Err(e) => Err(e),
            }
        })();
        let _ = fs::remove_file(&tmp);
        result
    }

    /// The MAC of one entry: its kind, its key and its payload.
    fn tag(&self, kind: &[u8], key: &[u8], payload: &[u8]) -> blake3::Hash {
        let mut h = blake3::Hasher::new_keyed(&self.0);
        h.update(&(kind.len() as u64).to_le_bytes());
        h.update(kind);
        h.update(&(key.len() as u64).to_le_bytes());
        h.update(key);
        h.update(payload);
        h.finalize()
    }
}

fn read_key(path: &Path) -> io::Result<Option<CacheKey>> {
    let text = match fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let text = String::from_utf8_lossy(&text);
    let text = text.trim();
    if text.len() != 64 {
        return Ok(None);
    }
    let mut bytes = [0; 32];
    for (i, byte) in bytes.iter_mut().enumerate() {
        match u8::from_str_radix(&text[2 * i..2 * i + 2], 16) {
            Ok(b) => *byte = b,
            Err(_) => return Ok(None),
        }
    }
    Ok(Some(CacheKey(bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(unix)]
fn private_file(path: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)
}

/// Where a host keeps its caches, and the key that authenticates their entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheDir {
    pub path: PathBuf,
    pub key: CacheKey,
}

impl CacheDir {
    pub fn new(path: impl Into<PathBuf>, key: CacheKey) -> CacheDir {
        CacheDir {
            path: path.into(),
            key,
        }
    }

    /// The user's cache: the folder [`crate::default_cache_dir`] names, authenticated by the
    /// key in [`default_key_file`] (created on first use). `None`, and so no caching at all,
    /// when there is no such folder or the key can be neither read nor created (a read-only
    /// home): a cache whose entries cannot be authenticated is not used.
    ///
    /// This reads the environment, so only the CLI should call it.
    pub fn for_user() -> Option<CacheDir> {
        let path = crate::default_cache_dir()?;
        let key = CacheKey::load_or_create(&default_key_file()?).ok()?;
        Some(CacheDir { path, key })
    }
}

/// The file holding the user's [`CacheKey`]: `$KILN_CACHE_KEY_FILE` if set, else
/// `$XDG_STATE_HOME/kiln/cache-key`, else `$HOME/.local/state/kiln/cache-key`. State, not
/// cache: a CI system that saves and restores `~/.cache` between runs (of any branch) does not
/// carry it, so a restored cache is only usable by a runner that holds the key that wrote it.
///
/// This reads the environment, so only the CLI should call it.
pub fn default_key_file() -> Option<PathBuf> {
    crate::user_path(
        "KILN_CACHE_KEY_FILE",
        "XDG_STATE_HOME",
        ".local/state",
        "kiln/cache-key",
    )
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// What happened with the disk cache when a module was loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// The host has no cache folder; the module was compiled.
    Disabled,
    /// A valid compiled entry was found and used.
    Hit,
    /// There was no entry; the module was compiled and (if possible) stored.
    Miss,
    /// There was an entry, but it was corrupt or from an incompatible engine; the module was
    /// compiled and the entry overwritten (if possible).
    Rebuilt,
    /// Not compiled at load: the result cache knew the module's ABI version, so it is compiled
    /// (or fetched from the disk cache) by the first call whose output is not cached.
    Deferred,
}

const MAGIC: &[u8] = b"kiln-cwasm-v2\n";
const TAG_LEN: usize = 32;
/// The kinds of entries, each MACed in a domain of its own.
const MODULE_KIND: &[u8] = b"compiled module";
const RESULT_KIND: &[u8] = b"policy output";

pub(crate) struct DiskCache {
    dir: PathBuf,
    key: CacheKey,
}

pub(crate) enum Lookup {
    Hit(Module),
    Miss,
    Bad,
}

/// Feeds `std::hash::Hash` output into blake3, to turn wasmtime's compatibility hash (which is
/// only available as `impl Hash`) into a stable key without relying on `DefaultHasher`.
struct Blake3Hasher(blake3::Hasher);

impl Hasher for Blake3Hasher {
    fn finish(&self) -> u64 {
        let hash = self.0.finalize();
        let mut first = [0; 8];
        first.copy_from_slice(&hash.as_bytes()[..8]);
        u64::from_le_bytes(first)
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The cache key for a module on this engine, as hex.
pub(crate) fn cache_key(engine: &Engine, module_hash: &blake3::Hash) -> String {
    let mut hasher = Blake3Hasher(blake3::Hasher::new());
    hasher.write(b"kiln-policy-host compiled module\0");
    hasher.write(module_hash.as_bytes());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.0.finalize().to_hex().to_string()
}

impl DiskCache {
    /// A cache in `cache_dir/policy-modules` (created on first store).
    pub(crate) fn new(cache: &CacheDir) -> DiskCache {
        DiskCache {
            dir: cache.path.join("policy-modules"),
            key: cache.key.clone(),
        }
    }

    pub(crate) fn entry_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.cwasm"))
    }

    pub(crate) fn lookup(&self, engine: &Engine, key: &str) -> Lookup {
        // Not found, or unreadable (the folder is not a folder, no permission): either way
        // there is nothing usable, and `store` will say whether it can write.
        let Some(data) = read_entry(&self.entry_path(key), SystemTime::now()) else {
            return Lookup::Miss;
        };
        let Some(payload) = verified_payload(&data, MAGIC, &self.key, MODULE_KIND, key.as_bytes())
        else {
            return Lookup::Bad;
        };
        // SAFETY: `Module::deserialize` is unsafe because wasmtime trusts the machine code in
        // the bytes: it checks that they were produced by a compatible engine, but not that
        // they are intact or honest. `verified_payload` has just checked the entry's MAC under
        // the host's secret key, over this entry's key and its payload; only `store` below
        // writes entries with that key, from the output of `Module::serialize` on an engine
        // with the same compatibility hash (part of the entry's key). So the bytes are exactly
        // what this machine's wasmtime serialized: a truncated, torn, garbage or forged file (a
        // cache folder restored from another branch's CI run) fails the check and is never
        // deserialized. The bytes are held in memory, so the file changing after the check
        // cannot matter. (Whoever can read the key file can forge entries; such a person can
        // also replace the kiln binary.) If an entry is still found incompatible,
        // `deserialize` returns an error and the entry is rebuilt.
        match unsafe { Module::deserialize(engine, payload) } {
            Ok(module) => Lookup::Hit(module),
            Err(_) => Lookup::Bad,
        }
    }

    /// Writes an entry atomically (temporary file + rename). Errors are returned for tests;
    /// callers ignore them.
    pub(crate) fn store(&self, key: &str, serialized: &[u8]) -> io::Result<()> {
        let tag = self.key.tag(MODULE_KIND, key.as_bytes(), serialized);
        write_entry(&self.dir, &self.entry_path(key), MAGIC, &tag, serialized)
    }
}

/// How long an entry may go unused before a prune removes it.
pub(crate) const KEEP_UNUSED: Duration = Duration::from_secs(30 * 86_400);
/// A hit marks its entry used when the mark is older than this: at most one `futimens` per
/// entry and day, and a pruned entry was unused for at least `KEEP_UNUSED - MARK_EVERY`.
const MARK_EVERY: Duration = Duration::from_secs(86_400);
/// A host prunes when the last prune (the modification time of `PRUNE_MARKER`) is older.
const PRUNE_EVERY: Duration = Duration::from_secs(86_400);
const PRUNE_MARKER: &str = "last-prune";

/// An entry's bytes, marking it used (its modification time) when the mark is older than
/// [`MARK_EVERY`]. `None` when it cannot be read.
fn read_entry(path: &Path, now: SystemTime) -> Option<Vec<u8>> {
    let mut file = fs::File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    let mut data = Vec::with_capacity(meta.len() as usize + 1);
    file.read_to_end(&mut data).ok()?;
    let stale = meta
        .modified()
        .is_ok_and(|m| now.duration_since(m).is_ok_and(|age| age > MARK_EVERY));
    if stale {
        // Best effort: a cache folder we may read but not mark is only pruned sooner.
        let _ = file.set_modified(now);
    }
    Some(data)
}

/// At most once per [`PRUNE_EVERY`], removes the entries of `cache_dir`'s caches that were not
/// used for [`KEEP_UNUSED`], on a thread of its own: nothing waits for it. The marker is
/// written first, so a process that exits before the prune ends leaves the rest for the next
/// day rather than starting over on every run; two processes pruning at once only race to
/// delete the same files.
pub(crate) fn prune_in_background(cache_dir: &Path) -> Option<std::thread::JoinHandle<()>> {
    let dirs = [
        cache_dir.join("policy-modules"),
        cache_dir.join("policy-results"),
    ];
    let now = SystemTime::now();
    let marker = cache_dir.join(PRUNE_MARKER);
    let recent = fs::metadata(&marker)
        .and_then(|m| m.modified())
        .is_ok_and(|last| {
            now.duration_since(last)
                .map_or(true, |age| age < PRUNE_EVERY)
        });
    if recent || !dirs.iter().any(|d| d.is_dir()) || fs::write(&marker, b"").is_err() {
        return None;
    }
    std::thread::Builder::new()
        .name("kiln-cache-prune".into())
        .spawn(move || {
            for dir in &dirs {
                prune(dir, now - KEEP_UNUSED);
            }
        })
        .ok()
}

/// Removes the files under `dir` (and one level of folders) last marked before `cutoff`,
/// temporary files left by a killed process included, and the folders that leaves empty.
/// Returns how many files it removed.
pub(crate) fn prune(dir: &Path, cutoff: SystemTime) -> usize {
    prune_below(dir, cutoff, 1)
}

fn prune_below(dir: &Path, cutoff: SystemTime, folders: u32) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        if meta.is_dir() && folders > 0 {
            removed += prune_below(&entry.path(), cutoff, folders - 1);
            // Only succeeds when the folder is empty.
            let _ = fs::remove_dir(entry.path());
        } else if meta.is_file() && meta.modified().is_ok_and(|m| m < cutoff) {
            removed += usize::from(fs::remove_file(entry.path()).is_ok());
        }
    }
    removed
}

/// Writes `magic`, the entry's tag and the payload to `path` in `dir`, atomically: a
/// temporary file in the same folder, renamed into place.
fn write_entry(
    dir: &Path,
    path: &Path,
    magic: &[u8],
    tag: &blake3::Hash,
    payload: &[u8],
) -> io::Result<()> {
    let name = path
        .file_name()
        .map_or("entry".into(), |n| n.to_string_lossy());
    // A prune (another thread or process) removes folders it finds empty: one that vanishes
    // between its creation and the write is created again, once.
    let mut retried = false;
    loop {
        fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(magic)?;
            file.write_all(tag.as_bytes())?;
            file.write_all(payload)?;
            drop(file);
            fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        match result {
            Err(e) if e.kind() == io::ErrorKind::NotFound && !retried => retried = true,
            result => return result,
        }
    }
}

/// The cache of policy outputs: `<cache_dir>/policy-results/<2 hex>/<key>`, where `key` is the
/// blake3 of the module's hash, the call limits and the input document's identity. A policy module has no
/// imports, so its output is a pure function of these: a hit is exactly the bytes the module
/// would return. Only successful calls are stored, and a hit's bytes are still checked against
/// the metadata like a fresh output. Entries are written atomically and authenticated by
/// their MAC when read; a bad or forged entry is a miss.
pub(crate) struct ResultCache {
    dir: PathBuf,
    key: CacheKey,
}

const RESULT_MAGIC: &[u8] = b"kiln-policy-output-v2\n";

impl ResultCache {
    pub(crate) fn new(cache: &CacheDir) -> ResultCache {
        ResultCache {
            dir: cache.path.join("policy-results"),
            key: cache.key.clone(),
        }
    }

    /// The key of a call: everything its output depends on. `input` identifies the input
    /// document (see `LoadedPolicy::check_memoized`).
    pub(crate) fn key(
        module_hash: &blake3::Hash,
        function: &str,
        limits: [u64; 5],
        input: &blake3::Hash,
    ) -> blake3::Hash {
        let mut h = blake3::Hasher::new();
        h.update(b"kiln-policy-host output v3\0");
        h.update(module_hash.as_bytes());
        h.update(function.as_bytes());
        h.update(b"\0");
        for limit in limits {
            h.update(&limit.to_le_bytes());
        }
        h.update(input.as_bytes());
        h.finalize()
    }

    fn path(&self, key: &blake3::Hash) -> (PathBuf, PathBuf) {
        let hex = key.to_hex();
        let dir = self.dir.join(&hex[..2]);
        let path = dir.join(&hex[2..]);
        (dir, path)
    }

    pub(crate) fn lookup(&self, key: &blake3::Hash) -> Option<Vec<u8>> {
        let data = read_entry(&self.path(key).1, SystemTime::now())?;
        let payload =
            verified_payload(&data, RESULT_MAGIC, &self.key, RESULT_KIND, key.as_bytes())?;
        Some(payload.to_vec())
    }

    pub(crate) fn store(&self, key: &blake3::Hash, output: &[u8]) -> io::Result<()> {
        let (dir, path) = self.path(key);
        let tag = self.key.tag(RESULT_KIND, key.as_bytes(), output);
        write_entry(&dir, &path, RESULT_MAGIC, &tag, output)
    }
}

/// The payload of an entry, if its header is right and its tag is the MAC, under `secret`, of
/// this kind of entry, this entry's key and the payload.
fn verified_payload<'a>(
    data: &'a [u8],
    magic: &[u8],
    secret: &CacheKey,
    kind: &[u8],
    key: &[u8],
) -> Option<&'a [u8]> {
    let rest = data.strip_prefix(magic)?;
    if rest.len() < TAG_LEN {
        return None;
    }
    let (tag, payload) = rest.split_at(TAG_LEN);
    // `blake3::Hash`'s equality is constant-time.
    (secret.tag(kind, key, payload) == blake3::Hash::from_slice(tag).ok()?).then_some(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_verification() {
        let secret = CacheKey::from_bytes([7; 32]);
        let payload = b"compiled code";
        let mut entry = MAGIC.to_vec();
        entry.extend_from_slice(secret.tag(MODULE_KIND, b"k", payload).as_bytes());
        entry.extend_from_slice(payload);
        let check = |entry: &[u8], secret: &CacheKey, kind: &[u8], key: &[u8]| {
            verified_payload(entry, MAGIC, secret, kind, key).map(<[u8]>::to_vec)
        };
        assert_eq!(
            check(&entry, &secret, MODULE_KIND, b"k"),
            Some(payload.to_vec())
        );
        // Another machine's key, another entry's key, another kind: all refused.
        assert_eq!(
            check(&entry, &CacheKey::from_bytes([8; 32]), MODULE_KIND, b"k"),
            None
        );
        assert_eq!(check(&entry, &secret, MODULE_KIND, b"other"), None);
        assert_eq!(check(&entry, &secret, RESULT_KIND, b"k"), None);
        // What an unkeyed checksum would accept: the payload's plain blake3.
        let mut forged = MAGIC.to_vec();
        forged.extend_from_slice(blake3::hash(payload).as_bytes());
        forged.extend_from_slice(payload);
        assert_eq!(check(&forged, &secret, MODULE_KIND, b"k"), None);
        let last = entry.len() - 1;
        entry[last] ^= 1;
        assert_eq!(check(&entry, &secret, MODULE_KIND, b"k"), None);
        assert_eq!(check(&entry[..20], &secret, MODULE_KIND, b"k"), None);
        assert_eq!(check(b"", &secret, MODULE_KIND, b"k"), None);
    }

    #[test]
    fn a_key_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/kiln/cache-key");
        let first = CacheKey::load_or_create(&path).unwrap();
        assert_eq!(CacheKey::load_or_create(&path).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "the key is readable by others: {mode:o}");
        }
        // Garbage is replaced by a new key.
        fs::write(&path, b"not a key").unwrap();
        let second = CacheKey::load_or_create(&path).unwrap();
        assert_ne!(second, first);
        assert_eq!(CacheKey::load_or_create(&path).unwrap(), second);
        // Two threads racing to create one agree on it.
        let path = dir.path().join("race/cache-key");
        let keys: Vec<CacheKey> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| CacheKey::load_or_create(&path).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.windows(2).all(|w| w[0] == w[1]));
    }

    fn entry(path: &Path, age_days: u64, now: SystemTime) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, b"x").unwrap();
        let file = fs::File::options().write(true).open(path).unwrap();
        file.set_modified(now - Duration::from_secs(age_days * 86_400))
            .unwrap();
    }

    #[test]
    fn unused_entries_are_pruned_and_hits_mark_theirs_used() {
        let dir = tempfile::tempdir().unwrap();
        let (results, modules) = (
            dir.path().join("policy-results"),
            dir.path().join("policy-modules"),
        );
        let now = SystemTime::now();
        entry(&results.join("ab/old"), 40, now);
        entry(&results.join("ab/recent"), 0, now);
        entry(&results.join("ab/used"), 40, now);
        entry(&results.join("cd/old"), 31, now);
        entry(&modules.join("old.cwasm"), 45, now);
        entry(&modules.join(".old.cwasm.1.0.tmp"), 45, now);
        entry(&modules.join("new.cwasm"), 0, now);
        // A hit marks its entry used; a recent mark is left alone (no write per hit).
        assert_eq!(
            read_entry(&results.join("ab/used"), now).as_deref(),
            Some(&b"x"[..])
        );
        let mtime = |p: &Path| fs::metadata(p).unwrap().modified().unwrap();
        assert!(now.duration_since(mtime(&results.join("ab/used"))).unwrap() < MARK_EVERY);
        let recent = mtime(&results.join("ab/recent"));
        read_entry(&results.join("ab/recent"), now + Duration::from_secs(3600)).unwrap();
        assert_eq!(mtime(&results.join("ab/recent")), recent);

        let handle = prune_in_background(dir.path()).expect("a first prune runs");
        handle.join().unwrap();
        let left = |d: &Path| {
            let mut names: Vec<String> = walk(d);
            names.sort();
            names
        };
        assert_eq!(left(&results), ["ab/recent", "ab/used"]);
        assert_eq!(left(&modules), ["new.cwasm"]);
        assert!(!results.join("cd").exists(), "an emptied folder stays");
        // At most once a day.
        entry(&results.join("ab/old"), 40, now);
        assert!(prune_in_background(dir.path()).is_none());
        assert!(results.join("ab/old").exists());
    }

    fn walk(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for e in fs::read_dir(dir).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().is_dir() {
                out.extend(walk(&e.path()).into_iter().map(|n| format!("{name}/{n}")));
            } else {
                out.push(name);
            }
        }
        out
    }
}
