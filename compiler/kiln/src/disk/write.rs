//! Writing a compile so that, killed at any point, it leaves the old outputs or the new ones
//! as a whole.
//!
//! 1. **Stage**: every changed file is written to a temporary file beside its final name
//!    (`NAME.PID.kiln-tmp`), and the new `kiln.lock` beside the old one. Nothing the
//!    project's readers see has changed yet; a failure here (a full disk) removes every
//!    temporary file and every folder this compile created.
//! 2. **Durable**: the staged files reach the disk (`syncfs` on Linux, one `fsync` per file
//!    elsewhere).
//! 3. **Commit**: a journal (`OUTPUT/.kiln-journal`) listing every rename and removal, with
//!    the blake3 of each file, is written and made durable. From this instant the compile has
//!    happened.
//! 4. **Apply**: the renames, the removals of stale outputs, the lock's rename; then the
//!    journal is removed.
//!
//! A compile killed before 3 leaves the old state (and temporary files the next compile
//! removes); one killed after 3 leaves a journal, which `kiln compile --check` reports as an
//! interrupted compile and the next `kiln compile` finishes ([`recover`]) before it does
//! anything else. Recovery renames a file only if its temporary file is there with the hash the
//! journal names, so a journal a branch commits can only move files inside the output folder
//! (which the compile that follows then rewrites anyway).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use cap_fs_ext::{FollowSymlinks, OpenOptionsFollowExt};
use cap_std::fs::{Dir, OpenOptions};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use kiln::lock::{LOCK_FILE, Lock, hash};

use super::open::{self, FsError, Want};
use super::{JOURNAL, LEGACY_WRITE_LOCK, OutputLock, ProjectDir, TMP_SUFFIX, into_error};

/// The largest journal kiln reads back (one line per file of a compile).
const MAX_JOURNAL_BYTES: u64 = 256 << 20;

/// Ways to make a compile fail on purpose, set from the environment by the CLI, so that the
/// tests can prove what a failed or killed compile leaves behind.
#[derive(Debug, Default)]
pub struct Faults {
    /// `KILN_TEST_FAIL_AFTER_WRITES=N`: the N+1th file write fails, as on a full disk.
    pub fail_after_writes: Option<usize>,
    /// `KILN_TEST_ABORT_AFTER_RENAMES=N`: the process aborts after N renames, as if killed.
    pub abort_after_renames: Option<usize>,
    /// `KILN_TEST_PAUSE_BEFORE_COMMIT=FILE`: before committing, create `FILE.ready` and wait
    /// (up to a minute) for `FILE.go`, so that a test can change the disk mid-compile.
    pub pause_before_commit: Option<PathBuf>,
    writes: usize,
    renames: usize,
}

impl Faults {
    pub fn from_env() -> Faults {
        let number = |name| std::env::var(name).ok().and_then(|v| v.parse().ok());
        Faults {
            fail_after_writes: number("KILN_TEST_FAIL_AFTER_WRITES"),
            abort_after_renames: number("KILN_TEST_ABORT_AFTER_RENAMES"),
            pause_before_commit: std::env::var_os("KILN_TEST_PAUSE_BEFORE_COMMIT")
                .map(PathBuf::from),
            ..Faults::default()
        }
    }

    fn before_write(&mut self) -> std::io::Result<()> {
        if self.fail_after_writes.is_some_and(|n| self.writes >= n) {
            return Err(std::io::Error::other(
                "simulated failure (KILN_TEST_FAIL_AFTER_WRITES)",
            ));
        }
        self.writes += 1;
        Ok(())
    }

    fn after_rename(&mut self) {
        self.renames += 1;
        if self.abort_after_renames == Some(self.renames) {
            std::process::abort();
        }
    }

    fn pause(&self) {
        let Some(file) = &self.pause_before_commit else {
            return;
        };
        let with = |ext: &str| {
            let mut p = file.clone().into_os_string();
            p.push(ext);
            PathBuf::from(p)
        };
        let _ = std::fs::write(with(".ready"), b"");
        for _ in 0..6000 {
            if with(".go").exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// What a write changed.
#[derive(Debug, Default)]
pub struct WriteReport {
    pub written: Vec<String>,
    pub unchanged: usize,
    pub removed: Vec<String>,
    /// Stale outputs left in place because they are not what kiln wrote (edited by hand, or
    /// not a regular file): kiln deletes only its own files.
    pub kept: Vec<String>,
}

/// The journal of a committed compile. Paths are relative to the output folder, but for the
/// lock's, which are relative to the project.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Journal {
    kiln_journal: u32,
    renames: Vec<Rename>,
    removes: Vec<Removal>,
    lock: Rename,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rename {
    from: String,
    to: String,
    blake3: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Removal {
    path: String,
    blake3: String,
}

/// Opens the folder `rel` under `base`, creating what is missing, through no link; the folders
/// it created are appended to `created` (relative to `base`), parents first.
pub(super) fn ensure_dir(base: &Dir, rel: &str, created: &mut Vec<String>) -> Result<Dir, FsError> {
    match open::open_dir_strict(base, rel) {
        Err(FsError::NotFound) => {}
        other => return other,
    }
    let mut current = base.try_clone().map_err(FsError::Io)?;
    let mut prefix = String::new();
    for part in rel.split('/').filter(|p| !p.is_empty()) {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(part);
        current = match open::open_dir_strict(&current, part) {
            Ok(dir) => dir,
            Err(FsError::NotFound) => {
                current.create_dir(part).map_err(FsError::Io)?;
                created.push(prefix.clone());
                open::open_dir_strict(&current, part)?
            }
            Err(e) => {
                let parent = prefix[..prefix.len() - part.len()].trim_end_matches('/');
                return Err(e.prefixed(parent));
            }
        };
    }
    Ok(current)
}

/// The folder of each file in turn, for paths visited in sorted order: the handle of the last
/// folder is kept, so a run of files in one folder opens it once.
struct Folders<'a> {
    base: &'a Dir,
    last: Option<(String, Dir)>,
}

impl<'a> Folders<'a> {
    fn new(base: &'a Dir) -> Folders<'a> {
        Folders { base, last: None }
    }

    fn get(&mut self, parent: &str, create: Option<&mut Vec<String>>) -> Result<&Dir, FsError> {
        if self.last.as_ref().is_none_or(|(p, _)| p != parent) {
            let dir = match (parent, create) {
                ("", _) => self.base.try_clone().map_err(FsError::Io)?,
                (p, Some(created)) => ensure_dir(self.base, p, created)?,
                (p, None) => open::open_dir_strict(self.base, p)?,
            };
            self.last = Some((parent.to_owned(), dir));
        }
        Ok(&self.last.as_ref().expect("just set").1)
    }
}

fn split(inner: &str) -> (&str, &str) {
    inner.rsplit_once('/').unwrap_or(("", inner))
}

fn tmp_name(name: &str) -> String {
    format!("{name}.{}{TMP_SUFFIX}", std::process::id())
}

/// Creates `name` in `dir` (it must not exist; no link is followed) holding `bytes`.
fn write_new(dir: &Dir, name: &str, bytes: &[u8]) -> std::io::Result<cap_std::fs::File> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true).follow(FollowSymlinks::No);
    let mut file = dir.open_with(name, &opts)?;
    file.write_all(bytes)?;
    Ok(file)
}

/// Replaces `name` in `dir` atomically with a durable file holding `bytes`.
pub(super) fn replace_file(dir: &Dir, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_name(name);
    let result = (|| -> std::io::Result<()> {
        write_new(dir, &tmp, bytes)?.sync_all()?;
        dir.rename(&tmp, dir, name)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = dir.remove_file(&tmp);
    }
    Ok(result?)
}

fn sync_dir(dir: &Dir) -> std::io::Result<()> {
    open::folder_fd(dir)?.sync_all()
}

/// Makes everything written under `out` and `root` durable: one `syncfs` per file system on
/// Linux; elsewhere an `fsync` of each named file and of the folders.
fn make_durable(out: &Dir, root: &Dir, files: &[(&str, &str)]) -> std::io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let _ = files;
        rustix::fs::syncfs(open::folder_fd(out)?)?;
        rustix::fs::syncfs(open::folder_fd(root)?)?;
        Ok(())
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let mut folders = Folders::new(out);
        for (parent, name) in files {
            let dir = folders
                .get(parent, None)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            dir.open(name)?.sync_all()?;
            sync_dir(dir)?;
        }
        sync_dir(out)?;
        sync_dir(root)
    }
}

/// Writes a compile (see the module documentation). `files` are the outputs to have on disk,
/// by path relative to the project; `settled` are outputs of this compile already found
/// identical on disk (under the same lock): neither written nor removed. `previous` is the
/// previous lock, restricted to the environments compiled: its outputs that are no longer
/// produced are removed when they are still what it says.
#[allow(clippy::too_many_arguments)]
pub fn write_compile(
    project: &ProjectDir,
    out: &OutputLock,
    files: &BTreeMap<&str, &[u8]>,
    settled: &BTreeSet<&str>,
    previous: Option<&Lock>,
    lock: &Lock,
    faults: &mut Faults,
) -> Result<WriteReport> {
    remove_leftovers(project, out);
    let mut changed: Vec<(&str, &str, &[u8])> = Vec::new();
    let unchanged: Vec<bool> = files
        .par_iter()
        .map(|(rel, bytes)| out.same(rel, bytes))
        .collect();
    let mut report = WriteReport {
        unchanged: settled.len(),
        ..WriteReport::default()
    };
    for ((rel, bytes), same) in files.iter().zip(unchanged) {
        let Some(inner) = out.inner(rel) else {
            bail!("refusing to write {rel}: outside the output folder");
        };
        match same {
            true => report.unchanged += 1,
            false => changed.push((rel, inner, bytes)),
        }
    }

    // 1. Stage.
    let mut created: Vec<String> = Vec::new();
    let mut staged: Vec<(String, String)> = Vec::new();
    let lock_tmp = tmp_name(LOCK_FILE);
    let mut lock_staged = false;
    let staging = (|| -> Result<Vec<Rename>> {
        let mut folders = Folders::new(&out.dir);
        let mut renames = Vec::with_capacity(changed.len());
        for &(rel, inner, bytes) in &changed {
            let (parent, name) = split(inner);
            let dir = folders
                .get(parent, Some(&mut created))
                .map_err(|e| into_error(e, &out.rel, "output folder"))
                .with_context(|| format!("writing {rel}"))?;
            let tmp = tmp_name(name);
            faults.before_write()?;
            staged.push((parent.to_owned(), tmp.clone()));
            write_new(dir, &tmp, bytes).with_context(|| format!("writing {rel}"))?;
            renames.push(Rename {
                from: join(parent, &tmp),
                to: inner.to_owned(),
                blake3: hash(bytes),
            });
        }
        faults.before_write()?;
        lock_staged = true;
        write_new(project.dir(), &lock_tmp, lock.render().as_bytes())
            .context("writing kiln.lock")?;
        let names: Vec<(&str, &str)> = staged
            .iter()
            .map(|(p, n)| (p.as_str(), n.as_str()))
            .collect();
        make_durable(&out.dir, project.dir(), &names).context("syncing the new files")?;
        Ok(renames)
    })();
    let clean_up = |staged: &[(String, String)], created: &[String], lock_staged: bool| {
        let mut folders = Folders::new(&out.dir);
        for (parent, tmp) in staged {
            if let Ok(dir) = folders.get(parent, None) {
                let _ = dir.remove_file(tmp);
            }
        }
        for dir in created.iter().rev() {
            let _ = out.dir.remove_dir(dir);
        }
        if lock_staged {
            let _ = project.dir().remove_file(&lock_tmp);
        }
    };
    let renames = match staging {
        Ok(renames) => renames,
        Err(e) => {
            clean_up(&staged, &created, lock_staged);
            return Err(e);
        }
    };

    // Stale outputs: removed only if still exactly what the previous compile wrote.
    let mut removes = Vec::new();
    if let Some(previous) = previous {
        for (old, locked) in &previous.outputs {
            if files.contains_key(old.as_str()) || settled.contains(old.as_str()) {
                continue;
            }
            let Some(inner) = out.inner(old) else {
                continue;
            };
            let is_ours = open::open_strict(&out.dir, inner, Want::File)
                .and_then(|f| open::read_capped(f, inner, super::MAX_OUTPUT_BYTES))
                .map(|bytes| hash(&bytes) == *locked);
            match is_ours {
                Ok(true) => removes.push(Removal {
                    path: inner.to_owned(),
                    blake3: locked.clone(),
                }),
                Err(FsError::NotFound) => {}
                Ok(false) | Err(_) => report.kept.push(old.clone()),
            }
        }
    }

    faults.pause();
    if !out.in_place(project) {
        clean_up(&staged, &created, lock_staged);
        bail!(
            "the output folder `{}` was removed or replaced while kiln compiled; nothing was written (run `kiln compile` again)",
            out.rel
        );
    }

    // 3. Commit.
    let journal = Journal {
        kiln_journal: 1,
        renames,
        removes,
        lock: Rename {
            from: lock_tmp.clone(),
            to: LOCK_FILE.to_owned(),
            blake3: hash(lock.render().as_bytes()),
        },
    };
    let text = serde_json::to_vec(&journal)?;
    if let Err(e) = replace_file(&out.dir, JOURNAL, &text) {
        clean_up(&staged, &created, lock_staged);
        return Err(e).context("writing the compile's journal");
    }

    // 4. Apply.
    let applied = apply(project, out, &journal, false, faults)?;
    out.dir
        .remove_file(JOURNAL)
        .context("removing the compile's journal")?;
    sync_dir(&out.dir)?;
    report.written = journal
        .renames
        .iter()
        .map(|r| format!("{}/{}", out.rel, r.to))
        .collect();
    report.removed = applied.removed;
    for removed in &journal.removes {
        remove_empty_parents(&out.dir, &removed.path);
    }
    if !out.in_place(project) {
        bail!(
            "the output folder `{}` was removed or replaced while kiln wrote it; run `kiln compile` again",
            out.rel
        );
    }
    Ok(report)
}

fn join(parent: &str, name: &str) -> String {
    match parent {
        "" => name.to_owned(),
        p => format!("{p}/{name}"),
    }
}

#[derive(Default)]
struct Applied {
    renamed: usize,
    removed: Vec<String>,
}

/// Carries out a journal. `recovering`: the journal was found on disk, not written by this
/// process, so each file is checked against its hash first, and what does not match or fails is
/// skipped instead of stopping (the compile that follows writes everything it needs anyway).
fn apply(
    project: &ProjectDir,
    out: &OutputLock,
    journal: &Journal,
    recovering: bool,
    faults: &mut Faults,
) -> Result<Applied> {
    let mut applied = Applied::default();
    let genuine = |dir: &Dir, name: &str, blake3: &str| {
        !recovering
            || open::open_strict(dir, name, Want::File)
                .and_then(|f| open::read_capped(f, name, super::MAX_OUTPUT_BYTES))
                .is_ok_and(|bytes| hash(&bytes) == blake3)
    };
    let mut folders = Folders::new(&out.dir);
    for r in &journal.renames {
        let ((from_parent, from), (to_parent, to)) = (split(&r.from), split(&r.to));
        let step = (|| -> Result<bool> {
            if from_parent != to_parent
                || !kiln::build::safe_relative(&r.from)
                || !kiln::build::safe_relative(&r.to)
                || !from.ends_with(TMP_SUFFIX)
            {
                bail!("a journal entry renames `{}` to `{}`", r.from, r.to);
            }
            let dir = folders
                .get(to_parent, None)
                .map_err(|e| into_error(e, &out.rel, "output folder"))?;
            if !genuine(dir, from, &r.blake3) {
                return Ok(false);
            }
            dir.rename(from, dir, to)
                .with_context(|| format!("replacing {}/{}", out.rel, r.to))?;
            Ok(true)
        })();
        match step {
            Ok(true) => {
                applied.renamed += 1;
                faults.after_rename();
            }
            Ok(false) => {}
            Err(_) if recovering => {}
            Err(e) => return Err(e),
        }
    }
    for r in &journal.removes {
        let (parent, name) = split(&r.path);
        let Ok(dir) = folders.get(parent, None) else {
            continue;
        };
        if !kiln::build::safe_relative(&r.path) || !genuine(dir, name, &r.blake3) {
            continue;
        }
        match dir.remove_file(name) {
            Ok(()) => applied.removed.push(format!("{}/{}", out.rel, r.path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) if recovering => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}/{}", out.rel, r.path)),
        }
    }
    let lock = &journal.lock;
    let lock_ok = lock.to == LOCK_FILE
        && lock.from.ends_with(TMP_SUFFIX)
        && !lock.from.contains('/')
        && genuine(project.dir(), &lock.from, &lock.blake3);
    if lock_ok {
        match project.dir().rename(&lock.from, project.dir(), LOCK_FILE) {
            Ok(()) => {}
            Err(_) if recovering => {}
            Err(e) => return Err(e).context("replacing kiln.lock"),
        }
    }
    let _ = make_durable(&out.dir, project.dir(), &[]);
    sync_dir(project.dir()).ok();
    Ok(applied)
}

/// Finishes the compile an interrupted `kiln compile` committed (its journal is in the output
/// folder): `Some(number of files put in place)`, or `None` when there is no journal.
pub fn recover(project: &ProjectDir, out: &OutputLock) -> Result<Option<usize>> {
    let bytes = match open::open_strict(&out.dir, JOURNAL, Want::File)
        .and_then(|f| open::read_capped(f, JOURNAL, MAX_JOURNAL_BYTES))
    {
        Ok(bytes) => bytes,
        Err(FsError::NotFound) => return Ok(None),
        Err(e) => return Err(into_error(e, &out.rel, "output folder")),
    };
    // Not a journal kiln wrote: there is nothing to finish.
    let count = match serde_json::from_slice::<Journal>(&bytes) {
        Ok(journal) if journal.kiln_journal == 1 => {
            apply(project, out, &journal, true, &mut Faults::default())?.renamed
        }
        _ => 0,
    };
    out.dir
        .remove_file(JOURNAL)
        .context("removing the interrupted compile's journal")?;
    sync_dir(&out.dir)?;
    Ok(Some(count))
}

/// Whether the output folder holds the journal of an interrupted compile.
pub fn interrupted(out: &super::OutputDir) -> bool {
    open::open_strict(&out.dir, JOURNAL, Want::File).is_ok()
}

/// Temporary files of killed compiles (in the output folder, and the lock's beside
/// `kiln.lock`), and the lock file older kilns kept in the folder. Only after [`recover`]: a
/// committed journal's files are not leftovers.
fn remove_leftovers(project: &ProjectDir, out: &OutputLock) {
    if let Ok(entries) = project.dir().entries() {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&format!("{LOCK_FILE}."))
                && name.ends_with(TMP_SUFFIX)
                && entry.file_type().is_ok_and(|t| t.is_file())
            {
                let _ = project.dir().remove_file(&name);
            }
        }
    }
    let Ok(root) = out.dir.try_clone() else {
        return;
    };
    let mut pending = vec![root];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = dir.entries() else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            match entry.file_type() {
                Ok(ft) if ft.is_dir() => {
                    if let Ok(sub) = open::open_dir_strict(&dir, &name) {
                        pending.push(sub);
                    }
                }
                Ok(ft)
                    if ft.is_file()
                        && (name.ends_with(TMP_SUFFIX) || name == LEGACY_WRITE_LOCK) =>
                {
                    let _ = dir.remove_file(&name);
                }
                _ => {}
            }
        }
    }
}

/// Removes the folders that removing `inner` left empty, up to the output folder.
fn remove_empty_parents(out: &Dir, inner: &str) {
    let mut path = inner;
    while let Some((parent, _)) = path.rsplit_once('/') {
        if out.remove_dir(parent).is_err() {
            break;
        }
        path = parent;
    }
}
