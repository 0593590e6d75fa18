//! Everything kiln does to the file system, and the only code that does it: reading a
//! project, reading the output folder, and writing a compile atomically under an exclusive
//! lock.
//!
//! Every access goes through an open directory handle ([`ProjectDir`] for the project
//! folder, [`OutputDir`] for the output folder; the primitives are in `open.rs`). A branch
//! controls every file of the project, so:
//!
//! - spec files, includes, policy modules and `kiln.lock` are read through symbolic links
//!   only when these stay inside the project, are regular files (never a FIFO or a device),
//!   and have a size limit each;
//! - the output folder and everything in it must be real folders and regular files: no
//!   symbolic link anywhere, so kiln never writes, reads or deletes elsewhere through one;
//! - a stale output is deleted only when it is a regular file whose content is what the
//!   previous compile wrote (its hash in the previous lock).
//!
//! The user's own paths (the project folder given on the command line, `--env-file`) are
//! opened as given: they are the user's choice, not the branch's.

mod open;
mod write;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result};
use cap_fs_ext::DirExt;
use cap_std::fs::Dir;

use kiln::lock::{LOCK_FILE, Lock};
use kiln_core::project::{LoadError, LoadedFile};

pub use open::{FsError, Refusal};
pub use write::{Faults, interrupted, recover, write_compile};

/// The advisory lock file older kilns kept in the output folder. The lock is now taken on
/// the folder itself; a leftover file of this name is ignored and removed by the next compile.
pub const LEGACY_WRITE_LOCK: &str = ".kiln-write.lck";
/// Suffix of the temporary files a compile writes before renaming them into place.
pub const TMP_SUFFIX: &str = ".kiln-tmp";
/// The journal of a compile that is renaming its files into place (see `write.rs`).
pub const JOURNAL: &str = ".kiln-journal";

/// The largest spec file (kiln.kdl or an include) kiln reads.
pub const MAX_SPEC_BYTES: u64 = 32 << 20;
/// The largest `kiln.lock` kiln reads.
pub const MAX_LOCK_BYTES: u64 = 128 << 20;
/// The largest policy module kiln reads (the policy host has limits of its own).
pub const MAX_MODULE_BYTES: u64 = 32 << 20;
/// The largest output file kiln reads back to compare; larger ones are shown as a note.
pub const MAX_OUTPUT_BYTES: u64 = 64 << 20;

/// A path kiln would not use, with the folder it was looked up in: the error that `main`
/// turns into an `unsafe-path` (or `file-too-large`) diagnostic.
#[derive(Debug)]
pub struct Refused {
    pub refusal: Refusal,
    /// "project" or "output folder".
    pub folder: &'static str,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.refusal.describe(self.folder))
    }
}

impl std::error::Error for Refused {}

impl Refused {
    /// The diagnostic code for this refusal.
    pub fn code(&self) -> &'static str {
        match self.refusal {
            Refusal::TooLarge { .. } => "file-too-large",
            _ => "unsafe-path",
        }
    }
}

/// `e` as an error for anyhow: a refusal stays recognisable, with paths relative to the
/// project (`prefix` is the folder the path was relative to, or "").
fn into_error(e: FsError, prefix: &str, folder: &'static str) -> anyhow::Error {
    match e {
        FsError::Refused(r) => anyhow::Error::new(Refused {
            refusal: r.prefixed(prefix),
            folder,
        }),
        FsError::NotFound => anyhow::anyhow!("no such file"),
        FsError::Io(e) => anyhow::Error::new(e),
    }
}

/// The project folder, opened once; every project file is read relative to it.
pub struct ProjectDir {
    dir: Dir,
}

impl ProjectDir {
    pub fn open(path: &Path) -> Result<ProjectDir> {
        let dir = Dir::open_ambient_dir(path, cap_std::ambient_authority())
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(ProjectDir { dir })
    }

    /// Reads a project file by its relative path (`/`-separated), at most `max` bytes.
    pub fn read(&self, rel: &str, max: u64) -> Result<Vec<u8>, FsError> {
        check_relative(rel)?;
        open::read_within(&self.dir, rel, max).map(|(bytes, _)| bytes)
    }

    /// The loader of spec files for `kiln_core::project::load`.
    pub fn loader(&self) -> impl FnMut(&str) -> Result<LoadedFile, LoadError> + '_ {
        move |rel: &str| {
            check_relative(rel).map_err(|e| load_error(e, rel))?;
            let (bytes, via_link) = open::read_within(&self.dir, rel, MAX_SPEC_BYTES)
                .map_err(|e| load_error(e, rel))?;
            let text = String::from_utf8(bytes).map_err(|e| LoadError {
                code: "not-utf8",
                reason: format!(
                    "the file is not UTF-8 (invalid byte at offset {})",
                    e.utf8_error().valid_up_to()
                ),
                help: Some("save spec files as UTF-8".into()),
            })?;
            Ok(LoadedFile {
                text,
                quotable: !via_link,
            })
        }
    }

    /// `kiln.lock`: `None` when there is none, `Some(Err)` when it does not parse.
    pub fn read_lock(&self) -> Result<Option<Result<Lock, String>>> {
        Ok(self.lock_text()?.map(|text| Lock::parse(&text)))
    }

    /// The text of `kiln.lock` (lossy UTF-8), if there is one.
    pub fn lock_text(&self) -> Result<Option<String>> {
        match open::read_within(&self.dir, LOCK_FILE, MAX_LOCK_BYTES) {
            Ok((bytes, _)) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            Err(FsError::NotFound) => Ok(None),
            Err(e) => Err(into_error(e, "", "project")).context("reading kiln.lock"),
        }
    }

    /// The output folder `rel`, when it exists: a real folder, reached through no link.
    pub fn output(&self, rel: &str) -> Result<Option<OutputDir>> {
        check_relative(rel).map_err(|e| into_error(e, "", "project"))?;
        match open::open_dir_strict(&self.dir, rel) {
            Ok(dir) => OutputDir::new(dir, rel).map(Some),
            Err(FsError::NotFound) => Ok(None),
            Err(e) => Err(into_error(e, "", "output folder")),
        }
    }

    /// The output folder `rel`, created (with its missing parents) if needed.
    pub fn create_output(&self, rel: &str) -> Result<OutputDir> {
        if let Some(out) = self.output(rel)? {
            return Ok(out);
        }
        let mut created = Vec::new();
        let dir = write::ensure_dir(&self.dir, rel, &mut created)
            .map_err(|e| into_error(e, "", "output folder"))
            .with_context(|| format!("creating {rel}"))?;
        OutputDir::new(dir, rel)
    }

    /// Replaces the project file `rel` with `bytes` atomically (a temporary file beside it,
    /// made durable, then renamed over it). Refuses a path through a symbolic link, and a
    /// file that is one: kiln writes no file that it did not find as a plain file.
    pub fn replace(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        check_relative(rel).map_err(|e| into_error(e, "", "project"))?;
        let (parent_rel, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let parent = match parent_rel {
            "" => self.dir.try_clone()?,
            p => open::open_dir_strict(&self.dir, p).map_err(|e| into_error(e, "", "project"))?,
        };
        if let Ok(meta) = parent.symlink_metadata(name)
            && meta.file_type().is_symlink()
        {
            let target = parent
                .read_link_contents(name)
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            return Err(into_error(
                FsError::Refused(Refusal::Link {
                    path: rel.to_owned(),
                    target,
                }),
                "",
                "project",
            ));
        }
        write::replace_file(&parent, name, bytes).with_context(|| format!("replacing {rel}"))
    }

    pub(crate) fn dir(&self) -> &Dir {
        &self.dir
    }
}

/// A path relative to a folder: `/`-separated, no `..`, no absolute path.
fn check_relative(rel: &str) -> Result<(), FsError> {
    if kiln::build::safe_relative(rel) {
        Ok(())
    } else {
        Err(FsError::Refused(Refusal::Leaves {
            path: rel.to_owned(),
            target: rel.to_owned(),
        }))
    }
}

/// The refusal of a spec text larger than [`MAX_SPEC_BYTES`] (an editor's unsaved buffer is
/// held to the file's limit).
pub fn spec_too_large(rel: &str) -> LoadError {
    let refusal = Refusal::TooLarge {
        path: rel.to_owned(),
        max: MAX_SPEC_BYTES,
    };
    load_error(FsError::Refused(refusal), rel)
}

fn load_error(e: FsError, rel: &str) -> LoadError {
    match e {
        FsError::NotFound => LoadError::from("no such file"),
        FsError::Refused(r) => LoadError {
            code: match r {
                Refusal::TooLarge { .. } => "file-too-large",
                _ => "unsafe-path",
            },
            reason: r.describe("project"),
            help: Some(r.help().to_owned()),
        },
        FsError::Io(e) => LoadError {
            code: "include-missing",
            reason: format!("{}: {e}", kiln_core::diagnostic::quote_for_terminal(rel)),
            help: None,
        },
    }
}

/// The output folder, opened through no link, with its identity (device and inode), so that
/// a compile can tell when the folder was removed or replaced while it ran.
pub struct OutputDir {
    dir: Dir,
    /// Relative to the project (`generated`).
    rel: String,
    identity: (u64, u64),
}

fn identity(meta: &cap_std::fs::Metadata) -> (u64, u64) {
    use cap_std::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

impl OutputDir {
    fn new(dir: Dir, rel: &str) -> Result<OutputDir> {
        let identity = identity(&dir.dir_metadata()?);
        Ok(OutputDir {
            dir,
            rel: rel.trim_end_matches('/').to_owned(),
            identity,
        })
    }

    /// A path relative to the project, as a path inside this folder.
    fn inner<'a>(&self, project_rel: &'a str) -> Option<&'a str> {
        project_rel
            .strip_prefix(self.rel.as_str())
            .and_then(|r| r.strip_prefix('/'))
            .filter(|r| kiln::build::safe_relative(r))
    }

    /// Whether the project's entry for this folder is still this folder.
    pub fn in_place(&self, project: &ProjectDir) -> bool {
        project
            .dir
            .symlink_metadata(&self.rel)
            .is_ok_and(|m| m.is_dir() && identity(&m) == self.identity)
    }

    /// Every file in the folder, by path relative to the project (`generated/a/b.conf`),
    /// without kiln's own temporary files, journal and legacy lock. A symbolic link or a
    /// special file anywhere in the folder is refused.
    pub fn list(&self) -> Result<BTreeSet<String>> {
        let mut files = BTreeSet::new();
        let mut pending: Vec<(String, Dir)> = vec![(String::new(), self.dir.try_clone()?)];
        while let Some((prefix, dir)) = pending.pop() {
            for entry in dir.entries()? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let rel = match prefix.as_str() {
                    "" => name.clone(),
                    p => format!("{p}/{name}"),
                };
                let ft = entry.file_type()?;
                if ft.is_dir() {
                    let sub = dir
                        .open_dir_nofollow(&name)
                        .with_context(|| format!("opening {}/{rel}", self.rel))?;
                    pending.push((rel, sub));
                } else if ft.is_file() {
                    if !is_kiln_own(&name) {
                        files.insert(format!("{}/{rel}", self.rel));
                    }
                } else {
                    let refusal = match ft.is_symlink() {
                        true => Refusal::Link {
                            target: dir
                                .read_link_contents(&name)
                                .map(|t| t.to_string_lossy().into_owned())
                                .unwrap_or_default(),
                            path: rel,
                        },
                        false => Refusal::NotAFile {
                            path: rel,
                            kind: "a FIFO, socket or device",
                        },
                    };
                    return Err(into_error(
                        FsError::Refused(refusal),
                        &self.rel,
                        "output folder",
                    ));
                }
            }
        }
        Ok(files)
    }

    /// Reads an output file by its path relative to the project. A file over
    /// [`MAX_OUTPUT_BYTES`] reads as a one-line note saying so.
    pub fn read(&self, project_rel: &str) -> Result<Vec<u8>> {
        let inner = self
            .inner(project_rel)
            .context("not in the output folder")?;
        let file = open::open_strict(&self.dir, inner, open::Want::File)
            .map_err(|e| into_error(e, &self.rel, "output folder"))?;
        match open::read_capped(file, inner, MAX_OUTPUT_BYTES) {
            Ok(bytes) => Ok(bytes),
            Err(FsError::Refused(Refusal::TooLarge { max, .. })) => Ok(format!(
                "(kiln: not shown, this file is larger than {} MiB)\n",
                max >> 20
            )
            .into_bytes()),
            Err(e) => Err(into_error(e, &self.rel, "output folder")),
        }
    }

    /// Every file of [`list`](OutputDir::list), read.
    pub fn read_all(&self) -> Result<BTreeMap<String, Vec<u8>>> {
        let mut files = BTreeMap::new();
        for rel in self.list()? {
            let bytes = self.read(&rel).with_context(|| format!("reading {rel}"))?;
            files.insert(rel, bytes);
        }
        Ok(files)
    }

    /// Whether the output file `project_rel` holds exactly `bytes`: one open, one `fstat`,
    /// and a read only when the sizes agree. A link or a special file is never the same.
    pub fn same(&self, project_rel: &str, bytes: &[u8]) -> bool {
        use std::io::Read;
        let Some(inner) = self.inner(project_rel) else {
            return false;
        };
        let Ok(file) = open::open_strict(&self.dir, inner, open::Want::File) else {
            return false;
        };
        if !file.metadata().is_ok_and(|m| m.len() == bytes.len() as u64) {
            return false;
        }
        let mut old = Vec::with_capacity(bytes.len() + 1);
        file.into_std().read_to_end(&mut old).is_ok() && old == bytes
    }

    /// Takes the folder's exclusive lock (waiting for another compile to finish): one
    /// `kiln compile` at a time reads and writes it. The lock is on the folder itself, so
    /// nothing is created for it and nothing can be substituted for it.
    pub fn lock(self) -> Result<OutputLock> {
        let handle = open::folder_fd(&self.dir)?;
        handle
            .lock()
            .context("waiting for another kiln compile to finish")?;
        Ok(OutputLock {
            out: self,
            _handle: handle,
        })
    }
}

/// Names kiln keeps in the output folder for itself.
fn is_kiln_own(name: &str) -> bool {
    name == LEGACY_WRITE_LOCK
        || name == JOURNAL
        || name.ends_with(TMP_SUFFIX)
        || name.starts_with(&format!("{JOURNAL}."))
}

/// An output folder whose exclusive lock this process holds; released when dropped.
pub struct OutputLock {
    out: OutputDir,
    _handle: std::fs::File,
}

impl std::ops::Deref for OutputLock {
    type Target = OutputDir;
    fn deref(&self) -> &OutputDir {
        &self.out
    }
}

impl OutputLock {
    /// Locks the output folder `rel` of `project` if it exists (`None`: nothing to guard yet,
    /// and nothing created).
    pub fn existing(project: &ProjectDir, rel: &str) -> Result<Option<OutputLock>> {
        project.output(rel)?.map(OutputDir::lock).transpose()
    }

    /// Locks the output folder, creating it first if needed.
    pub fn create(project: &ProjectDir, rel: &str) -> Result<OutputLock> {
        project.create_output(rel)?.lock()
    }
}
