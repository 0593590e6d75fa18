//! The on-disk cache of compiled modules.
//!
//! An entry is one file, `<cache_dir>/policy-modules/<key>.cwasm`, where `key` is the blake3 of
//! the module's bytes together with wasmtime's engine compatibility hash (wasmtime version,
//! target, compiler settings). Its contents are a magic line, the blake3 of the payload, and the
//! payload: the bytes `Module::serialize` produced.
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

const MAGIC: &[u8] = b"kiln-cwasm-v1\n";
const HASH_LEN: usize = 32;

pub(crate) struct DiskCache {
    dir: PathBuf,
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
    pub(crate) fn new(cache_dir: &Path) -> DiskCache {
        DiskCache {
            dir: cache_dir.join("policy-modules"),
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
        let Some(payload) = verified_payload(&data) else {
            return Lookup::Bad;
        };
        // SAFETY: `Module::deserialize` is unsafe because wasmtime trusts the machine code in
        // the bytes: it checks that they were produced by a compatible engine, but not that
        // they are intact. `verified_payload` has just checked that these bytes hash to the
        // blake3 stored in the entry's header, and entries are only ever written by `store`
        // below, from the output of `Module::serialize` on an engine with the same
        // compatibility hash (it is part of the file name). So the bytes are exactly what
        // wasmtime serialized: a truncated, torn or garbage file fails the hash check and is
        // never deserialized. The bytes are held in memory, so the file changing after the
        // check cannot matter. (Someone who can write to the user's cache folder can forge
        // both the hash and the payload; such a person can also replace the kiln binary, so
        // that is outside what the cache defends against.) An entry from another wasmtime
        // version has another file name; if one is still found incompatible, `deserialize`
        // returns an error and the entry is rebuilt.
        match unsafe { Module::deserialize(engine, payload) } {
            Ok(module) => Lookup::Hit(module),
            Err(_) => Lookup::Bad,
        }
    }

    /// Writes an entry atomically (temporary file + rename). Errors are returned for tests;
    /// callers ignore them.
    pub(crate) fn store(&self, key: &str, serialized: &[u8]) -> io::Result<()> {
        write_entry(&self.dir, &self.entry_path(key), MAGIC, serialized)
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

/// Writes `magic`, the payload's blake3 and the payload to `path` in `dir`, atomically: a
/// temporary file in the same folder, renamed into place.
fn write_entry(dir: &Path, path: &Path, magic: &[u8], payload: &[u8]) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map_or("entry".into(), |n| n.to_string_lossy());
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(magic)?;
        file.write_all(blake3::hash(payload).as_bytes())?;
        file.write_all(payload)?;
        drop(file);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The cache of policy outputs: `<cache_dir>/policy-results/<2 hex>/<key>`, where `key` is the
/// blake3 of the module's hash, the call limits and the input document's identity. A policy module has no
/// imports, so its output is a pure function of these: a hit is exactly the bytes the module
/// would return. Only successful calls are stored, and a hit's bytes are still checked against
/// the metadata like a fresh output. Entries are written atomically and verified by their
/// blake3 when read; a bad entry is a miss.
pub(crate) struct ResultCache {
    dir: PathBuf,
}

const RESULT_MAGIC: &[u8] = b"kiln-policy-output-v1\n";

impl ResultCache {
    pub(crate) fn new(cache_dir: &Path) -> ResultCache {
        ResultCache {
            dir: cache_dir.join("policy-results"),
        }
    }

    /// The key of a call: everything its output depends on. `input` identifies the input
    /// document (see `LoadedPolicy::check_memoized`).
    pub(crate) fn key(
        module_hash: &blake3::Hash,
        function: &str,
        limits: [u64; 4],
        input: &blake3::Hash,
    ) -> blake3::Hash {
        let mut h = blake3::Hasher::new();
        h.update(b"kiln-policy-host output v2\0");
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
        let payload = verified_payload_with(&data, RESULT_MAGIC)?;
        Some(payload.to_vec())
    }

    pub(crate) fn store(&self, key: &blake3::Hash, output: &[u8]) -> io::Result<()> {
        let (dir, path) = self.path(key);
        write_entry(&dir, &path, RESULT_MAGIC, output)
    }
}

/// The payload of an entry, if the header is right and the payload's blake3 matches it.
fn verified_payload(data: &[u8]) -> Option<&[u8]> {
    verified_payload_with(data, MAGIC)
}

fn verified_payload_with<'a>(data: &'a [u8], magic: &[u8]) -> Option<&'a [u8]> {
    let rest = data.strip_prefix(magic)?;
    if rest.len() < HASH_LEN {
        return None;
    }
    let (hash, payload) = rest.split_at(HASH_LEN);
    // `blake3::Hash`'s equality is constant-time; speed is not the point here, correctness is.
    (blake3::hash(payload) == blake3::Hash::from_slice(hash).ok()?).then_some(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_verification() {
        let payload = b"compiled code";
        let mut entry = MAGIC.to_vec();
        entry.extend_from_slice(blake3::hash(payload).as_bytes());
        entry.extend_from_slice(payload);
        assert_eq!(verified_payload(&entry), Some(&payload[..]));
        let last = entry.len() - 1;
        entry[last] ^= 1;
        assert_eq!(verified_payload(&entry), None);
        assert_eq!(verified_payload(&entry[..20]), None);
        assert_eq!(verified_payload(b""), None);
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
