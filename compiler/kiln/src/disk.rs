//! Everything kiln does to the file system: reading a project, reading the
//! output folder, and writing a compile atomically under an exclusive lock.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rayon::prelude::*;

use kiln::build::safe_relative;
use kiln::lock::{LOCK_FILE, Lock};

/// Name of the advisory lock file kiln holds while writing (inside the output folder).
pub const WRITE_LOCK: &str = ".kiln-write.lck";
const TMP_SUFFIX: &str = ".kiln-tmp";

/// Reads project files by relative path, refusing anything outside `root`.
pub fn loader(root: &Path) -> impl FnMut(&str) -> Result<String, String> + '_ {
    move |rel: &str| {
        if !safe_relative(rel) {
            return Err("the path leaves the project folder".into());
        }
        let path = root.join(rel);
        match fs::read(&path) {
            Ok(bytes) => String::from_utf8(bytes).map_err(|_| "the file is not UTF-8".to_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err("no such file".into()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Every file under the output folder (relative to the project), except kiln's own lock and temp files.
pub fn read_outputs(root: &Path, output: &str) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    for rel in list_outputs(root, output)? {
        let path = root.join(&rel);
        let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        files.insert(rel, bytes);
    }
    Ok(files)
}

/// The files under the output folder (paths relative to `root`, `/`-separated), without
/// kiln's own write lock and temp files.
pub fn list_outputs(root: &Path, output: &str) -> Result<BTreeSet<String>> {
    let dir = root.join(output);
    let mut files = BTreeSet::new();
    if !dir.exists() {
        return Ok(files);
    }
    for entry in walkdir::WalkDir::new(&dir) {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        if !entry.file_type().is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy();
        if name == WRITE_LOCK || name.ends_with(TMP_SUFFIX) {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(root)
            .expect("under root")
            .to_string_lossy()
            .replace('\\', "/");
        files.insert(rel);
    }
    Ok(files)
}

pub fn read_lock(root: &Path) -> Result<Option<Result<Lock, String>>> {
    match fs::read_to_string(root.join(LOCK_FILE)) {
        Ok(text) => Ok(Some(Lock::parse(&text))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).context("reading kiln.lock"),
    }
}

/// The operations a write needs; tests swap in a failing implementation.
pub trait Fs {
    /// Writes a new file (creating its folder); [`Fs::sync`] makes it durable.
    fn write_new(&mut self, path: &Path, bytes: &[u8]) -> std::io::Result<()>;
    /// Makes files written by [`Fs::write_new`] durable (fsync).
    fn sync(&mut self, paths: &[&Path]) -> std::io::Result<()>;
    fn rename(&mut self, from: &Path, to: &Path) -> std::io::Result<()>;
    fn remove(&mut self, path: &Path) -> std::io::Result<()>;
}

/// Threads that fsync at once: a file system commits concurrent fsyncs
/// together, so this is I/O parallelism, not CPU (about 3x faster than one at
/// a time on an ext4 virtual disk).
const SYNC_THREADS: usize = 16;

/// The real file system. `fail_after`, set from `KILN_TEST_FAIL_AFTER_WRITES` by
/// the CLI, makes the N+1th write fail: the tests use it to prove that an
/// interrupted compile leaves the previous files and lock intact.
pub struct RealFs {
    pub writes: usize,
    pub fail_after: Option<usize>,
}

impl RealFs {
    pub fn from_env() -> RealFs {
        RealFs {
            writes: 0,
            fail_after: std::env::var("KILN_TEST_FAIL_AFTER_WRITES")
                .ok()
                .and_then(|v| v.parse().ok()),
        }
    }
}

impl Fs for RealFs {
    fn write_new(&mut self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        if self.fail_after.is_some_and(|n| self.writes >= n) {
            return Err(std::io::Error::other(
                "simulated failure (KILN_TEST_FAIL_AFTER_WRITES)",
            ));
        }
        self.writes += 1;
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut f = fs::File::create(path)?;
        f.write_all(bytes)
    }
    fn sync(&mut self, paths: &[&Path]) -> std::io::Result<()> {
        if paths.is_empty() {
            return Ok(());
        }
        let per_thread = paths.len().div_ceil(SYNC_THREADS);
        std::thread::scope(|scope| {
            let workers: Vec<_> = paths
                .chunks(per_thread)
                .map(|chunk| {
                    scope.spawn(move || -> std::io::Result<()> {
                        for path in chunk {
                            fs::File::open(path)?.sync_all()?;
                        }
                        Ok(())
                    })
                })
                .collect();
            workers
                .into_iter()
                .try_for_each(|w| w.join().expect("an fsync thread panicked"))
        })
    }
    fn rename(&mut self, from: &Path, to: &Path) -> std::io::Result<()> {
        fs::rename(from, to)
    }
    fn remove(&mut self, path: &Path) -> std::io::Result<()> {
        match fs::remove_file(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

/// What a write changed.
#[derive(Debug, Default)]
pub struct WriteReport {
    pub written: Vec<String>,
    pub unchanged: usize,
    pub removed: Vec<String>,
}

/// The exclusive advisory lock on an output folder: one `kiln compile` at a time
/// reads and writes it. Released when dropped.
pub struct OutputLock {
    _file: fs::File,
}

impl OutputLock {
    /// Creates `root/output` if needed, then waits for and takes its lock.
    pub fn acquire(root: &Path, output: &str) -> Result<OutputLock> {
        let out_dir = root.join(output);
        fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
        OutputLock::take(&out_dir)
    }

    /// [`acquire`](OutputLock::acquire) when `root/output` is already a folder; `None`
    /// (nothing to guard yet, and nothing created) when it is not.
    pub fn acquire_existing(root: &Path, output: &str) -> Result<Option<OutputLock>> {
        let out_dir = root.join(output);
        match out_dir.is_dir() {
            true => OutputLock::take(&out_dir).map(Some),
            false => Ok(None),
        }
    }

    fn take(out_dir: &Path) -> Result<OutputLock> {
        let path = out_dir.join(WRITE_LOCK);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        file.lock()
            .context("waiting for another kiln compile to finish")?;
        Ok(OutputLock { _file: file })
    }
}

/// Writes a compile: every changed file to a temp file first (all of them made
/// durable before going on), then renames them into place, removes files the
/// previous lock generated that are no longer produced, and writes the lock
/// last. A failure before the renames leaves the previous files and lock as
/// they were.
///
/// `files` are compared with the disk here; `settled` are outputs of this
/// compile already found identical on disk (by [`settle`], under the same
/// `_guard`): they are neither written nor removed.
#[allow(clippy::too_many_arguments)]
pub fn write_compile(
    fs_ops: &mut dyn Fs,
    _guard: &OutputLock,
    root: &Path,
    output: &str,
    files: &BTreeMap<&str, &[u8]>,
    settled: &BTreeSet<&str>,
    previous: Option<&Lock>,
    lock: &Lock,
) -> Result<WriteReport> {
    let out_dir = root.join(output);
    clean_temp_files(&out_dir);
    let mut report = WriteReport {
        unchanged: settled.len(),
        ..WriteReport::default()
    };
    let mut staged: Vec<(PathBuf, PathBuf, String)> = Vec::new();
    let result = (|| -> Result<()> {
        let prefix = format!("{output}/");
        for rel in files.keys() {
            if !safe_relative(rel) || !rel.starts_with(&prefix) {
                bail!("refusing to write {rel}: outside the output folder");
            }
        }
        // Which files differ from the disk: read and compared in parallel (a
        // recompile of a large project reads tens of thousands of files).
        let unchanged: Vec<bool> = files
            .par_iter()
            .map(|(rel, bytes)| same_file(&root.join(rel), bytes))
            .collect();
        for ((rel, bytes), unchanged) in files.iter().zip(unchanged) {
            if unchanged {
                report.unchanged += 1;
                continue;
            }
            let path = root.join(rel);
            let tmp = tmp_path(&path);
            fs_ops
                .write_new(&tmp, bytes)
                .with_context(|| format!("writing {}", tmp.display()))?;
            staged.push((tmp, path, rel.to_string()));
        }
        let tmps: Vec<&Path> = staged.iter().map(|(tmp, _, _)| tmp.as_path()).collect();
        fs_ops.sync(&tmps).context("syncing the new files")?;
        Ok(())
    })();
    if let Err(e) = result {
        for (tmp, _, _) in &staged {
            let _ = fs::remove_file(tmp);
        }
        return Err(e);
    }
    for (tmp, path, rel) in staged {
        fs_ops
            .rename(&tmp, &path)
            .with_context(|| format!("replacing {}", path.display()))?;
        report.written.push(rel);
    }
    if let Some(previous) = previous {
        for old in previous.outputs.keys() {
            if files.contains_key(old.as_str())
                || settled.contains(old.as_str())
                || !safe_relative(old)
                || !old.starts_with(&format!("{output}/"))
            {
                continue;
            }
            fs_ops
                .remove(&root.join(old))
                .with_context(|| format!("removing {old}"))?;
            report.removed.push(old.clone());
            remove_empty_parents(&root.join(old), &out_dir);
        }
    }
    let lock_path = root.join(LOCK_FILE);
    let tmp = tmp_path(&lock_path);
    fs_ops
        .write_new(&tmp, lock.render().as_bytes())
        .context("writing kiln.lock")?;
    fs_ops.sync(&[&tmp]).context("writing kiln.lock")?;
    fs_ops
        .rename(&tmp, &lock_path)
        .context("replacing kiln.lock")?;
    Ok(report)
}

/// Whether the file at `root/rel` holds exactly `bytes`. For `kiln compile`
/// while it builds (under its [`OutputLock`]): an environment's files that are
/// already on disk need not be kept in memory until the write.
pub fn settle(root: &Path, rel: &str, bytes: &[u8]) -> bool {
    safe_relative(rel) && same_file(&root.join(rel), bytes)
}

/// Whether the file at `path` holds exactly `bytes`: one open, one `fstat`, and
/// a read only when the sizes agree.
fn same_file(path: &Path, bytes: &[u8]) -> bool {
    use std::io::Read;
    let Ok(mut file) = fs::File::open(path) else {
        return false;
    };
    if !file
        .metadata()
        .is_ok_and(|m| m.is_file() && m.len() == bytes.len() as u64)
    {
        return false;
    }
    let mut old = Vec::with_capacity(bytes.len() + 1);
    file.read_to_end(&mut old).is_ok() && old == bytes
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".{}{TMP_SUFFIX}", std::process::id()));
    path.with_file_name(name)
}

/// Temp files left by a compile that was killed.
fn clean_temp_files(dir: &Path) {
    for entry in walkdir::WalkDir::new(dir).into_iter().flatten() {
        if entry.file_type().is_file() && entry.file_name().to_string_lossy().ends_with(TMP_SUFFIX)
        {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn remove_empty_parents(path: &Path, stop: &Path) {
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d == stop || !d.starts_with(stop) || fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}
