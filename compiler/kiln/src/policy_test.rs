//! `kiln policy test DIR`: the harness for policy authors. Each case is a spec
//! (`*.kdl`, compiled as a project's kiln.kdl) whose lines carry the findings
//! they must produce as `// finding: RULE [RULE…]`. A case compares the rules
//! it names in its markers, plus its folder's name when that is a rule id, plus
//! any listed in a `// rules: RULE…` line; other rules are not compared.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Result;
use kiln_core::diagnostic::{Diagnostic, RenderOptions, render};

use crate::ui::{EXIT_ERROR, EXIT_FINDINGS, EXIT_OK, Ui, is_policy_code};

fn cases(dir: &Path) -> Vec<PathBuf> {
    if dir.is_file() {
        return vec![dir.to_path_buf()];
    }
    let mut out: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "kdl"))
        .map(|e| e.into_path())
        .collect();
    out.sort();
    out
}

fn markers(text: &str, folder_rule: Option<&str>) -> (BTreeSet<(usize, String)>, BTreeSet<String>) {
    let mut expected = BTreeSet::new();
    let mut rules: BTreeSet<String> = folder_rule.map(str::to_owned).into_iter().collect();
    for (i, line) in text.lines().enumerate() {
        if let Some(pos) = line.find("// finding:") {
            for rule in line[pos + "// finding:".len()..].split_whitespace() {
                expected.insert((i + 1, rule.to_owned()));
                rules.insert(rule.to_owned());
            }
        }
        if let Some(pos) = line.find("// rules:") {
            rules.extend(
                line[pos + "// rules:".len()..]
                    .split_whitespace()
                    .map(str::to_owned),
            );
        }
    }
    (expected, rules)
}

/// A case's text: a regular file of at most the size of a spec.
fn read_case(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err("cannot read: not a regular file".into());
    }
    let mut bytes = Vec::new();
    file.take(crate::disk::MAX_SPEC_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > crate::disk::MAX_SPEC_BYTES {
        return Err("cannot read: larger than a spec may be".into());
    }
    String::from_utf8(bytes).map_err(|_| "cannot read: not UTF-8".into())
}

/// Runs one case; `Ok(())` when the findings match its markers.
fn run_case(path: &Path) -> Result<(), String> {
    let text = read_case(path)?;
    let folder_rule = path
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| is_policy_code(n));
    let (expected, rules) = markers(&text, folder_rule.as_deref());
    if rules.is_empty() {
        return Err(
            "names no rule: add `// finding: RULE` markers or a `// rules: RULE` line".into(),
        );
    }
    let root = path.parent().unwrap_or(Path::new("."));
    let root = crate::disk::ProjectDir::open(root).map_err(|e| format!("{e:#}"))?;
    let (project, diags) = {
        let mut disk = root.loader();
        let mut loader = |p: &str| {
            if p == kiln_core::project::ROOT_FILE {
                Ok(kiln_core::project::LoadedFile::from(text.clone()))
            } else {
                disk(p)
            }
        };
        kiln_core::project::load(&mut loader)
    };
    let b =
        crate::checked::build_checked(&root, project, diags, &[], crate::checked::Keep::All, false);
    let spec_errors: Vec<&Diagnostic> = b
        .diagnostics
        .iter()
        .filter(|d| d.is_error() && !is_policy_code(&d.code))
        .collect();
    if !spec_errors.is_empty() {
        let owned: Vec<Diagnostic> = spec_errors.into_iter().cloned().collect();
        return Err(format!(
            "the spec itself has errors:\n{}",
            render(&owned, &b.project.sources, RenderOptions::default())
        ));
    }
    let actual: BTreeSet<(usize, String)> = b
        .diagnostics
        .iter()
        .filter(|d| rules.contains(&d.code))
        .filter_map(|d| {
            let span = d.primary_span()?;
            let file = b.project.sources.get(span.file);
            (file.name == kiln_core::project::ROOT_FILE)
                .then(|| (file.line_col(span.start).0, d.code.clone()))
        })
        .collect();
    if actual == expected {
        return Ok(());
    }
    let missing: Vec<String> = expected
        .difference(&actual)
        .map(|(l, r)| format!("line {l}: {r}"))
        .collect();
    let extra: Vec<String> = actual
        .difference(&expected)
        .map(|(l, r)| format!("line {l}: {r}"))
        .collect();
    let relevant: Vec<Diagnostic> = b
        .diagnostics
        .iter()
        .filter(|d| rules.contains(&d.code))
        .cloned()
        .collect();
    Err(format!(
        "expected but not found: [{}]\n  found but not expected: [{}]\n{}",
        missing.join(", "),
        extra.join(", "),
        render(&relevant, &b.project.sources, RenderOptions::default())
    ))
}

pub fn run(_ui: &Ui, dir: &Path) -> Result<u8> {
    let list = cases(dir);
    if list.is_empty() {
        eprintln!("kiln: no test cases (*.kdl) in {}", dir.display());
        return Ok(EXIT_ERROR);
    }
    let (mut passed, mut failed) = (0, 0);
    for case in &list {
        match run_case(case) {
            Ok(()) => {
                passed += 1;
                println!("PASS {}", case.display());
            }
            Err(why) => {
                failed += 1;
                println!("FAIL {}\n  {why}", case.display());
            }
        }
    }
    println!("policy test: {passed} passed, {failed} failed");
    Ok(if failed > 0 { EXIT_FINDINGS } else { EXIT_OK })
}
