//! The primitives under every file access of kiln: a path is always opened relative to an
//! open directory handle (cap-std's `Dir`), never as text joined onto a path, so what a
//! branch commits (symbolic links, FIFOs, devices, deep trees) cannot take kiln elsewhere.
//!
//! Two ways to open, for two kinds of folder:
//!
//! - [`open_strict`]: no symbolic link anywhere in the path (the output folder is kiln's
//!   own, and a link there would make kiln write, read or delete somewhere else). On Linux
//!   one `openat2` call with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`; elsewhere, or when the
//!   kernel refuses `openat2`, one `openat(O_NOFOLLOW)` per component.
//! - [`read_within`]: symbolic links are followed as long as they stay inside the folder
//!   (a project may link one spec to another), through cap-std's sandboxed resolution.
//!
//! Both refuse anything but a regular file (a FIFO would block, `/dev/zero` never ends, a
//! folder is not a spec) and read at most a given number of bytes.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};

use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt};
use cap_std::fs::{Dir, File, OpenOptions, OpenOptionsExt};

/// Why kiln will not use a path. Every variant names the path (relative to the folder it was
/// opened in), and a link's target, so the diagnostic can say exactly what to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A symbolic link whose target is outside the folder kiln may use.
    Leaves { path: String, target: String },
    /// A symbolic link where kiln accepts none (in or as the output folder).
    Link { path: String, target: String },
    /// Something other than a regular file where a file was expected.
    NotAFile { path: String, kind: &'static str },
    /// Something other than a folder where a folder was expected.
    NotAFolder { path: String, kind: &'static str },
    /// A file over the size limit for its kind.
    TooLarge { path: String, max: u64 },
}

impl Refusal {
    /// What is wrong, as a sentence fragment: "`a.kdl` is a symbolic link to `/etc/passwd`,
    /// which leads out of the project".
    pub fn describe(&self, folder: &str) -> String {
        let q = |s: &str| kiln_core::diagnostic::quote_for_terminal(s).into_owned();
        match self {
            Refusal::Leaves { path, target } => format!(
                "`{}` is a symbolic link to `{}`, which leads out of the {folder}",
                q(path),
                q(target)
            ),
            Refusal::Link { path, target } => format!(
                "`{}` is a symbolic link (to `{}`); kiln follows no link in the {folder}",
                q(path),
                q(target)
            ),
            Refusal::NotAFile { path, kind } => {
                format!("`{}` is {kind}, not a regular file", q(path))
            }
            Refusal::NotAFolder { path, kind } => {
                format!("`{}` is {kind}, not a folder", q(path))
            }
            Refusal::TooLarge { path, max } => format!(
                "`{}` is larger than {} MiB, the most kiln reads of such a file",
                q(path),
                max >> 20
            ),
        }
    }

    /// The same refusal, its path taken as relative to `prefix` (a folder, relative to the
    /// project), so the diagnostic names the path from the project folder.
    pub fn prefixed(mut self, prefix: &str) -> Refusal {
        if !prefix.is_empty() {
            let path = self.path_mut();
            *path = format!("{}/{path}", prefix.trim_end_matches('/'));
        }
        self
    }

    fn path_mut(&mut self) -> &mut String {
        match self {
            Refusal::Leaves { path, .. }
            | Refusal::Link { path, .. }
            | Refusal::NotAFile { path, .. }
            | Refusal::NotAFolder { path, .. }
            | Refusal::TooLarge { path, .. } => path,
        }
    }

    /// What to do about it.
    pub fn help(&self) -> &'static str {
        match self {
            Refusal::Leaves { .. } => {
                "keep every file kiln reads inside the project folder, as a real file or a link to one inside it"
            }
            Refusal::Link { .. } => {
                "remove the link; kiln writes the output folder itself, as real folders and files"
            }
            Refusal::NotAFile { .. } => "point at a regular file",
            Refusal::NotAFolder { .. } => "remove it; kiln creates this folder itself",
            Refusal::TooLarge { .. } => {
                "split the file, or check that it is the file you meant to include"
            }
        }
    }
}

/// Why a file could not be opened or read.
#[derive(Debug)]
pub enum FsError {
    NotFound,
    Refused(Refusal),
    Io(io::Error),
}

impl FsError {
    /// [`Refusal::prefixed`] for a refusal; other errors as they are.
    pub fn prefixed(self, prefix: &str) -> FsError {
        match self {
            FsError::Refused(r) => FsError::Refused(r.prefixed(prefix)),
            other => other,
        }
    }

    fn from_io(e: io::Error) -> FsError {
        match e.kind() {
            io::ErrorKind::NotFound => FsError::NotFound,
            _ => FsError::Io(e),
        }
    }
}

impl std::fmt::Display for FsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FsError::NotFound => f.write_str("no such file"),
            FsError::Refused(r) => f.write_str(&r.describe("folder")),
            FsError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for FsError {}

/// What kind of thing a file type is, for a refusal.
fn kind_of(ft: cap_std::fs::FileType) -> &'static str {
    use cap_fs_ext::FileTypeExt;
    if ft.is_dir() {
        "a folder"
    } else if ft.is_file() {
        "a file"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() || ft.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// Set once `openat2` is found unusable (an old kernel, a seccomp filter): the component walk
/// is used from then on.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// What [`open_strict`] opens.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Want {
    File,
    Folder,
}

/// Opens `rel` (a `/`-separated relative path) under `dir` for reading, refusing a symbolic
/// link in any component and anything that is not `want`. Never blocks on a FIFO.
pub fn open_strict(dir: &Dir, rel: &str, want: Want) -> Result<File, FsError> {
    let opened = match openat2_strict(dir, rel, want) {
        Some(result) => result,
        None => walk_strict(dir, rel, want),
    };
    let file = opened.map_err(|e| classify(dir, rel, e, true))?;
    check_type(&file, rel, want)?;
    Ok(file)
}

/// [`open_strict`] for a folder.
pub fn open_dir_strict(dir: &Dir, rel: &str) -> Result<Dir, FsError> {
    open_strict(dir, rel, Want::Folder).map(|f| Dir::from_std_file(f.into_std()))
}

fn check_type(file: &File, rel: &str, want: Want) -> Result<(), FsError> {
    let ft = file.metadata().map_err(FsError::Io)?.file_type();
    let ok = match want {
        Want::File => ft.is_file(),
        Want::Folder => ft.is_dir(),
    };
    if ok {
        return Ok(());
    }
    let path = rel.to_owned();
    let kind = kind_of(ft);
    Err(FsError::Refused(match want {
        Want::File => Refusal::NotAFile { path, kind },
        Want::Folder => Refusal::NotAFolder { path, kind },
    }))
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn openat2_strict(dir: &Dir, rel: &str, want: Want) -> Option<io::Result<File>> {
    use rustix::fs::{Mode, OFlags, ResolveFlags, openat2};
    if NO_OPENAT2.load(Ordering::Relaxed) {
        return None;
    }
    let mut flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NOCTTY;
    flags |= match want {
        Want::File => OFlags::NONBLOCK,
        Want::Folder => OFlags::DIRECTORY,
    };
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    loop {
        match openat2(dir, rel, flags, Mode::empty(), resolve) {
            Ok(fd) => return Some(Ok(File::from_std(std::fs::File::from(fd)))),
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => continue,
            // No openat2 here (kernel < 5.6, or a sandbox filtering it): walk instead.
            Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM) => {
                NO_OPENAT2.store(true, Ordering::Relaxed);
                return None;
            }
            Err(e) => return Some(Err(e.into())),
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn openat2_strict(_: &Dir, _: &str, _: Want) -> Option<io::Result<File>> {
    None
}

/// [`open_strict`] without `openat2`: one no-follow open per component.
pub(super) fn walk_strict(dir: &Dir, rel: &str, want: Want) -> io::Result<File> {
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    let Some((last, parents)) = parts.split_last() else {
        return dir.try_clone().map(|d| File::from_std(d.into_std_file()));
    };
    let mut current: Option<Dir> = None;
    for part in parents {
        let next = current.as_ref().unwrap_or(dir).open_dir_nofollow(part)?;
        current = Some(next);
    }
    let parent = current.as_ref().unwrap_or(dir);
    match want {
        Want::Folder => parent
            .open_dir_nofollow(last)
            .map(|d| File::from_std(d.into_std_file())),
        Want::File => {
            let mut opts = OpenOptions::new();
            opts.read(true)
                .follow(FollowSymlinks::No)
                .custom_flags(nonblocking());
            parent.open_with(last, &opts)
        }
    }
}

/// A plain read-only descriptor of the folder `dir` (cap-std may hold an `O_PATH` one, on
/// which `fsync`, `syncfs` and `flock` fail): for syncing and locking it.
#[cfg(unix)]
pub fn folder_fd(dir: &Dir) -> io::Result<std::fs::File> {
    use rustix::fs::{Mode, OFlags, openat};
    let fd = openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(std::fs::File::from(fd))
}

#[cfg(not(unix))]
pub fn folder_fd(dir: &Dir) -> io::Result<std::fs::File> {
    Ok(dir.try_clone()?.into_std_file())
}

#[cfg(unix)]
fn nonblocking() -> i32 {
    (rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY).bits() as i32
}

#[cfg(not(unix))]
fn nonblocking() -> i32 {
    0
}

/// Turns a failed open into a [`FsError`] that names the culprit: the first component of
/// `rel` that is a symbolic link (refused when `strict`, or when it leads out of `dir`).
fn classify(dir: &Dir, rel: &str, error: io::Error, strict: bool) -> FsError {
    let mut prefix = String::new();
    for part in rel.split('/').filter(|p| !p.is_empty()) {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(part);
        let Ok(meta) = dir.symlink_metadata(&prefix) else {
            break;
        };
        if meta.file_type().is_symlink() {
            let target = dir
                .read_link_contents(&prefix)
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "?".to_owned());
            // Sandboxed resolution fails (not with "not found") when the link leads out.
            let leaves = match dir.metadata(&prefix) {
                Ok(_) => false,
                Err(e) => e.kind() != io::ErrorKind::NotFound,
            };
            let path = prefix;
            return FsError::Refused(match leaves || !strict {
                true => Refusal::Leaves { path, target },
                false => Refusal::Link { path, target },
            });
        }
    }
    FsError::from_io(error)
}

/// Reads the file `rel` under `dir`, following symbolic links that stay inside `dir`, at most
/// `max` bytes. Also says whether a link was followed: the text of a file reached through a
/// link is not the project's own (it may be anything the machine holds inside the folder),
/// so diagnostics never quote it.
pub fn read_within(dir: &Dir, rel: &str, max: u64) -> Result<(Vec<u8>, bool), FsError> {
    match open_strict(dir, rel, Want::File) {
        Ok(file) => return read_capped(file, rel, max).map(|b| (b, false)),
        Err(FsError::Refused(Refusal::Link { .. })) => {}
        Err(e) => return Err(e),
    }
    let mut opts = OpenOptions::new();
    opts.read(true).custom_flags(nonblocking());
    let file = dir
        .open_with(rel, &opts)
        .map_err(|e| classify(dir, rel, e, false))?;
    check_type(&file, rel, Want::File)?;
    read_capped(file, rel, max).map(|b| (b, true))
}

/// At most `max` bytes of an open regular file; more is a refusal, not a truncation.
pub fn read_capped(file: File, rel: &str, max: u64) -> Result<Vec<u8>, FsError> {
    let too_large = || {
        FsError::Refused(Refusal::TooLarge {
            path: rel.to_owned(),
            max,
        })
    };
    let len = file.metadata().map_err(FsError::Io)?.len();
    if len > max {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(len as usize + 1);
    file.into_std()
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(FsError::Io)?;
    if bytes.len() as u64 > max {
        return Err(too_large());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (tempfile::TempDir, Dir) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a.kdl"), b"a").unwrap();
        std::fs::write(tmp.path().join("outside"), b"secret").unwrap();
        let link = |to: &str, at: &str| std::os::unix::fs::symlink(to, root.join(at)).unwrap();
        link("sub/a.kdl", "inside.kdl");
        link("sub", "subdir");
        link("../outside", "out.kdl");
        link("/etc", "etc");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let dir = Dir::open_ambient_dir(&root, cap_std::ambient_authority()).unwrap();
        (tmp, dir)
    }

    fn refusal(r: Result<impl Sized, FsError>) -> Refusal {
        match r {
            Err(FsError::Refused(r)) => r,
            Err(e) => panic!("not a refusal: {e:?}"),
            Ok(_) => panic!("opened"),
        }
    }

    #[test]
    fn strict_opens_refuse_every_link_and_special_file() {
        let (_tmp, dir) = tree();
        for walk in [false, true] {
            NO_OPENAT2.store(walk, Ordering::Relaxed);
            assert!(open_strict(&dir, "sub/a.kdl", Want::File).is_ok());
            assert_eq!(
                refusal(open_strict(&dir, "inside.kdl", Want::File)),
                Refusal::Link {
                    path: "inside.kdl".into(),
                    target: "sub/a.kdl".into()
                }
            );
            assert_eq!(
                refusal(open_strict(&dir, "subdir/a.kdl", Want::File)),
                Refusal::Link {
                    path: "subdir".into(),
                    target: "sub".into()
                }
            );
            assert_eq!(
                refusal(open_strict(&dir, "etc/passwd", Want::File)),
                Refusal::Leaves {
                    path: "etc".into(),
                    target: "/etc".into()
                }
            );
            assert!(matches!(
                refusal(open_strict(&dir, "fifo", Want::File)),
                Refusal::NotAFile { kind: "a FIFO", .. }
            ));
            assert!(matches!(
                refusal(open_strict(&dir, "sub", Want::File)),
                Refusal::NotAFile {
                    kind: "a folder",
                    ..
                }
            ));
            assert!(matches!(
                open_strict(&dir, "missing", Want::File),
                Err(FsError::NotFound)
            ));
            assert!(open_dir_strict(&dir, "sub").is_ok());
            assert!(matches!(
                refusal(open_dir_strict(&dir, "subdir")),
                Refusal::Link { .. }
            ));
        }
        NO_OPENAT2.store(false, Ordering::Relaxed);
    }

    #[test]
    fn reads_follow_links_only_inside_and_stop_at_the_cap() {
        let (_tmp, dir) = tree();
        assert_eq!(
            read_within(&dir, "sub/a.kdl", 10).unwrap(),
            (b"a".to_vec(), false)
        );
        assert_eq!(
            read_within(&dir, "inside.kdl", 10).unwrap(),
            (b"a".to_vec(), true)
        );
        assert_eq!(
            read_within(&dir, "subdir/a.kdl", 10).unwrap(),
            (b"a".to_vec(), true)
        );
        assert_eq!(
            refusal(read_within(&dir, "out.kdl", 10)),
            Refusal::Leaves {
                path: "out.kdl".into(),
                target: "../outside".into()
            }
        );
        assert!(matches!(
            refusal(read_within(&dir, "etc/passwd", 10)),
            Refusal::Leaves { .. }
        ));
        assert!(matches!(
            refusal(read_within(&dir, "fifo", 10)),
            Refusal::NotAFile { .. }
        ));
        assert!(matches!(
            refusal(read_within(&dir, "sub/a.kdl", 0)),
            Refusal::TooLarge { max: 0, .. }
        ));
    }
}
