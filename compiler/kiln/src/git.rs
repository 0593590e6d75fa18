//! The generated files of a committed revision, for `kiln diff --base REV`: read with the
//! `git` program (ls-tree, then one `cat-file --batch`), never by checking anything out.
//! Only regular files under the project's output folder are read, each within the same
//! size cap as a file on disk; links and submodules in the tree are skipped.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::disk::MAX_OUTPUT_BYTES;

/// All files of the revision, at most (the outputs of a thousand environments fit).
const MAX_TOTAL_BYTES: u64 = 2 << 30;

fn git(dir: &Path) -> Command {
    let mut c = Command::new("git");
    c.arg("-C").arg(dir);
    // The repository's configuration cannot run programs here: no pager, no external
    // diff, no textconv (only ls-tree and cat-file run, which use none of them).
    c.env("GIT_PAGER", "cat").env("GIT_TERMINAL_PROMPT", "0");
    c
}

fn run(cmd: &mut Command) -> Result<Vec<u8>, String> {
    let o = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).trim().to_owned());
    }
    Ok(o.stdout)
}

/// The files under `output/` of the project at `dir`, as committed in `rev`: paths
/// relative to the project folder, as `kiln compile` writes them.
pub fn committed_outputs(
    dir: &Path,
    rev: &str,
    output: &str,
) -> Result<BTreeMap<String, Vec<u8>>, String> {
    if rev.starts_with('-') || rev.contains(['\0', '\n']) {
        return Err(format!("`{rev}` is not a revision"));
    }
    let sha = run(git(dir)
        .args(["rev-parse", "--verify", "--quiet", "--end-of-options"])
        .arg(format!("{rev}^{{commit}}")))
    .map_err(|_| {
        format!(
            "`{rev}` is not a commit of the repository at {}",
            dir.display()
        )
    })?;
    let sha = String::from_utf8_lossy(&sha).trim().to_owned();
    // Paths relative to `dir` (ls-tree reads and prints them relative to the current folder).
    let listing = run(git(dir)
        .args(["ls-tree", "-r", "-z", "-l", &sha, "--"])
        .arg(format!("{output}/")))?;
    let mut wanted: Vec<(String, String, u64)> = Vec::new();
    let mut total = 0u64;
    for entry in listing.split(|b| *b == 0).filter(|e| !e.is_empty()) {
        let entry = String::from_utf8_lossy(entry);
        // `<mode> SP <type> SP <object> SP+ <size> TAB <path>`
        let Some((meta, path)) = entry.split_once('\t') else {
            continue;
        };
        let fields: Vec<&str> = meta.split_whitespace().collect();
        let [mode, kind, object, size] = fields[..] else {
            continue;
        };
        if kind != "blob" || !(mode == "100644" || mode == "100755") {
            continue; // a link or a submodule is no generated file
        }
        let size: u64 = size.parse().unwrap_or(u64::MAX);
        if size > MAX_OUTPUT_BYTES {
            return Err(format!(
                "{path} in {rev} is larger than {MAX_OUTPUT_BYTES} bytes"
            ));
        }
        total += size;
        if total > MAX_TOTAL_BYTES {
            return Err(format!(
                "the outputs of {rev} exceed {MAX_TOTAL_BYTES} bytes"
            ));
        }
        wanted.push((path.to_owned(), object.to_owned(), size));
    }
    let mut child = git(dir)
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run git: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped");
    let objects: Vec<String> = wanted.iter().map(|(_, o, _)| o.clone()).collect();
    let feeder = std::thread::spawn(move || {
        for o in objects {
            if writeln!(stdin, "{o}").is_err() {
                break;
            }
        }
    });
    let mut reader = BufReader::new(child.stdout.take().expect("piped"));
    let mut out = BTreeMap::new();
    for (path, object, size) in wanted {
        let mut header = String::new();
        reader
            .read_line(&mut header)
            .map_err(|e| format!("git cat-file: {e}"))?;
        let announced: Vec<&str> = header.split_whitespace().collect();
        if announced.first() != Some(&object.as_str())
            || announced.get(2) != Some(&size.to_string().as_str())
        {
            return Err(format!(
                "git cat-file answered `{}` for {path}",
                header.trim()
            ));
        }
        let mut data = vec![0; size as usize + 1]; // the content, then a newline
        reader
            .read_exact(&mut data)
            .map_err(|e| format!("git cat-file: {e}"))?;
        data.pop();
        out.insert(path, data);
    }
    let _ = feeder.join();
    let _ = child.wait();
    Ok(out)
}
