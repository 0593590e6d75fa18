//! Machine and review formats: SARIF 2.1.0, GitHub workflow annotations,
//! provenance-annotated diffs, and `kiln explain` output. Pure.

use std::collections::{BTreeMap, BTreeSet};

use kiln_core::Artifact;
use kiln_core::diagnostic::{Diagnostic, Severity};
use kiln_core::model::Model;
use kiln_core::source::Sources;
use serde_json::{Value, json};

use crate::build::{Build, COMPILER_VERSION};
use crate::compare::{Difference, State, unified_diff};

/// The version of the `--format json` documents (docs/schemas/): bumped on a change that
/// is not an addition.
pub const JSON_FORMAT_VERSION: u32 = 1;

/// Documentation of a rule, for SARIF `rules` and `kiln explain RULE`.
#[derive(Clone, Debug, Default)]
pub struct RuleInfo {
    pub id: String,
    pub summary: String,
    pub help: String,
    pub upstream: Vec<String>,
}

fn sarif_level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

/// Where a report's paths are written from: the repository-relative prefix of the project
/// folder (a project in `deploy/` of its repository is `deploy/`), and the spec file that
/// stands for a finding with no line of its own.
#[derive(Clone, Debug)]
pub struct Paths {
    pub prefix: String,
    pub spec: String,
}

impl Paths {
    /// The project at `dir`: its prefix inside `$GITHUB_WORKSPACE` when it is under it (GitHub
    /// resolves annotation and SARIF paths against the repository root), else none.
    pub fn for_project(dir: &std::path::Path) -> Paths {
        let prefix = std::env::var_os("GITHUB_WORKSPACE")
            .and_then(|ws| {
                let ws = std::fs::canonicalize(ws).ok()?;
                let dir = std::fs::canonicalize(dir).ok()?;
                let rel = dir.strip_prefix(&ws).ok()?.to_str()?.to_owned();
                Some(match rel.is_empty() {
                    true => rel,
                    false => format!("{}/", rel.replace('\\', "/")),
                })
            })
            .unwrap_or_default();
        Paths {
            prefix,
            spec: kiln_core::project::ROOT_FILE.to_owned(),
        }
    }

    fn uri(&self, file: &str) -> String {
        format!("{}{file}", self.prefix)
    }
}

impl Default for Paths {
    fn default() -> Paths {
        Paths {
            prefix: String::new(),
            spec: kiln_core::project::ROOT_FILE.to_owned(),
        }
    }
}

/// Where a result points: its primary span in a project file, else the project's spec
/// (line 1). A span in kiln's embedded stdlib (a preset) is no file of the repository.
fn result_location(
    d: &Diagnostic,
    sources: &Sources,
    paths: &Paths,
) -> kiln_core::source::Location {
    d.labels
        .iter()
        .map(|l| sources.location(l.span))
        .find(|loc| !loc.file.starts_with('<'))
        .unwrap_or_else(|| kiln_core::source::Location {
            file: paths.spec.clone(),
            line: 1,
            column: 1,
            end_line: 1,
            end_column: 1,
        })
}

/// The first line where a drifted file differs from what kiln would write (1 when it is
/// not on disk, or when only its end differs).
fn first_difference(d: &Difference) -> usize {
    match (&d.expected, &d.actual) {
        (Some(e), Some(a)) => {
            e.lines()
                .zip(a.lines())
                .position(|(x, y)| x != y)
                .unwrap_or_else(|| e.lines().count().min(a.lines().count()))
                + 1
        }
        _ => 1,
    }
}

/// The rule id of a drifted output in SARIF.
pub const DRIFT_RULE: &str = "kiln/drift";

/// A SARIF 2.1.0 log of the diagnostics and of the drifted files: a valid run even with no
/// result, every result with a location (GitHub code scanning refuses a file with one that
/// has none).
pub fn sarif(
    diags: &[Diagnostic],
    sources: &Sources,
    rules: &BTreeMap<String, RuleInfo>,
    diffs: &[Difference],
    paths: &Paths,
) -> Value {
    let mut codes: BTreeSet<&str> = diags.iter().map(|d| d.code.as_str()).collect();
    if !diffs.is_empty() {
        codes.insert(DRIFT_RULE);
    }
    let rule_list: Vec<Value> = codes
        .iter()
        .map(|code| {
            let info = rules.get(*code);
            let summary = match (*code, info) {
                (DRIFT_RULE, _) => "a generated file differs from what the spec compiles to".to_owned(),
                (_, Some(i)) => i.summary.clone(),
                (_, None) => format!("kiln check `{code}`"),
            };
            let mut rule = json!({
                "id": code,
                "shortDescription": {"text": summary},
            });
            if *code == DRIFT_RULE {
                rule["help"] = json!({"text": "Generated files are committed and reviewed; they must be exactly what `kiln compile` writes from the spec. Change the spec, run `kiln compile`, and commit both."});
            }
            if let Some(info) = info {
                rule["help"] = json!({"text": info.help});
                rule["properties"] = json!({"upstream": info.upstream, "tags": info.upstream});
            }
            rule
        })
        .collect();
    let index: BTreeMap<&str, usize> = codes.iter().enumerate().map(|(i, c)| (*c, i)).collect();
    let region = |loc: &kiln_core::source::Location| json!({"startLine": loc.line, "startColumn": loc.column, "endLine": loc.end_line, "endColumn": loc.end_column.max(loc.column)});
    let mut results: Vec<Value> = diags
        .iter()
        .map(|d| {
            let mut text = d.message.clone();
            if let Some(h) = &d.help {
                text.push_str("\nhelp: ");
                text.push_str(h);
            }
            let mut r = json!({
                "ruleId": d.code,
                "ruleIndex": index[d.code.as_str()],
                "level": sarif_level(d.severity),
                "message": {"text": text},
            });
            if let Some(pointer) = &d.pointer {
                r["properties"] = json!({"pointer": pointer});
            }
            let loc = result_location(d, sources, paths);
            r["locations"] = json!([{
                "physicalLocation": {
                    "artifactLocation": {"uri": paths.uri(&loc.file)},
                    "region": region(&loc),
                }
            }]);
            r
        })
        .collect();
    for d in diffs {
        // A file that is not on disk has no line to point at: the spec stands for it.
        let (file, line) = match d.state {
            State::Missing | State::Interrupted => (paths.spec.clone(), 1),
            _ => (d.path.clone(), first_difference(d)),
        };
        results.push(json!({
            "ruleId": DRIFT_RULE,
            "ruleIndex": index[DRIFT_RULE],
            "level": "error",
            "message": {"text": format!("{} {}; run `kiln compile` and commit the result", d.path, d.state.describe())},
            "locations": [{
                "physicalLocation": {
                    "artifactLocation": {"uri": paths.uri(&file)},
                    "region": {"startLine": line},
                }
            }],
            "properties": {"path": d.path, "state": d.state},
        }));
    }
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "kiln", "version": COMPILER_VERSION, "rules": rule_list}},
            "results": results,
        }]
    })
}

/// A workflow command's message: GitHub's escapes for `%` and LF, and every other control
/// character (CR included) written as a visible escape: a raw ESC in a log would act on the
/// terminal of whoever reads it.
fn github_escape(s: &str) -> String {
    kiln_core::diagnostic::sanitize_for_terminal(s)
        .replace('%', "%25")
        .replace('\n', "%0A")
}

fn github_prop(s: &str) -> String {
    github_escape(s).replace(':', "%3A").replace(',', "%2C")
}

/// GitHub Actions workflow commands, one per diagnostic and drifted file, each with a file
/// and a line (GitHub shows an annotation without them only on the run's summary page).
pub fn github(
    diags: &[Diagnostic],
    sources: &Sources,
    diffs: &[Difference],
    paths: &Paths,
) -> String {
    let mut out = String::new();
    for d in diags {
        let cmd = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "notice",
        };
        let loc = result_location(d, sources, paths);
        let props = [
            format!(
                "file={},line={},col={},endLine={},endColumn={}",
                github_prop(&paths.uri(&loc.file)),
                loc.line,
                loc.column,
                loc.end_line,
                loc.end_column
            ),
            format!("title={}", github_prop(&d.code)),
        ];
        let mut msg = d.message.clone();
        if let Some(h) = &d.help {
            msg.push_str("\nhelp: ");
            msg.push_str(h);
        }
        out.push_str(&format!(
            "::{cmd} {}::{}\n",
            props.join(","),
            github_escape(&msg)
        ));
    }
    for d in diffs {
        let (file, line) = match d.state {
            State::Missing | State::Interrupted => (paths.spec.clone(), 1),
            _ => (d.path.clone(), first_difference(d)),
        };
        out.push_str(&format!(
            "::error file={},line={line},title=kiln drift::{} {}; run `kiln compile`\n",
            github_prop(&paths.uri(&file)),
            github_escape(&d.path),
            d.state.describe()
        ));
    }
    out
}

/// Where a model value came from, as `file:line` lines with the layer and source text.
pub fn origins_of(sources: &Sources, model: &Model, pointer: &str) -> Vec<String> {
    let Some((_, origins)) = model.provenance.lookup(pointer) else {
        return Vec::new();
    };
    origins
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let loc = sources.location(o.span);
            let text = sources.get(o.span.file).line(loc.line).unwrap_or("").trim();
            let role = if i == 0 { "set" } else { "overrides" };
            format!("{role} in {} at {}:{}: {text}", o.layer, loc.file, loc.line)
        })
        .collect()
}

/// `kiln explain FILE[:LINE]`: each line with the spec lines behind it.
pub fn explain_lines(
    sources: &Sources,
    model: &Model,
    artifact: &Artifact,
    only: Option<usize>,
) -> String {
    let mut out = String::new();
    for (i, line) in artifact.text.lines().enumerate() {
        let n = i + 1;
        if only.is_some_and(|o| o != n) {
            continue;
        }
        out.push_str(&format!("{n:>5} | {line}\n"));
        let pointers = artifact.lines.get(i).cloned().unwrap_or_default();
        if pointers.is_empty() && only.is_some() {
            out.push_str("      = kiln's fixed output for this target (no spec value behind it)\n");
        }
        let mut seen = BTreeSet::new();
        for p in &pointers {
            for origin in origins_of(sources, model, p) {
                if seen.insert(origin.clone()) {
                    out.push_str(&format!("      = {p}: {origin}\n"));
                }
            }
        }
    }
    if only.is_some() && out.is_empty() {
        out.push_str(&format!("{} has no such line\n", artifact.path));
    }
    out
}

/// `kiln diff`: unified diffs grouped by environment and target, each hunk
/// followed by the spec lines behind its new lines.
pub fn diff_report(
    b: &Build,
    files: &BTreeMap<&str, &Artifact>,
    diffs: &[Difference],
    format: crate::DiffFormat,
) -> String {
    use crate::DiffFormat;
    if format == DiffFormat::Json {
        let list: Vec<Value> = diffs
            .iter()
            .map(|d| json!({"path": d.path, "state": d.state, "diff": unified_diff(d), "sources": sources_for(b, files, d)}))
            .collect();
        return format!(
            "{}\n",
            serde_json::to_string_pretty(&json!({"kiln": COMPILER_VERSION, "files": list}))
                .unwrap_or_default()
        );
    }
    let markdown = format == DiffFormat::Markdown;
    let mut out = String::new();
    if diffs.is_empty() {
        out.push_str(if markdown {
            "**kiln**: no changes to generated files.\n"
        } else {
            "kiln: no changes\n"
        });
        return out;
    }
    let mut groups: BTreeMap<(String, String), Vec<&Difference>> = BTreeMap::new();
    for d in diffs {
        let parts: Vec<&str> = d.path.splitn(4, '/').collect();
        let key = match parts.as_slice() {
            [_, env, target, _] => (env.to_string(), target.to_string()),
            _ => (String::new(), String::new()),
        };
        groups.entry(key).or_default().push(d);
    }
    if markdown {
        out.push_str(&format!(
            "### kiln: {} generated file(s) change\n\n",
            diffs.len()
        ));
    }
    for ((env, target), list) in groups {
        if markdown {
            out.push_str(&format!("#### `{env}` / `{target}`\n\n"));
        } else {
            out.push_str(&format!("=== {env} / {target}\n"));
        }
        for d in list {
            let srcs = sources_for(b, files, d);
            if markdown {
                out.push_str(&format!(
                    "<details><summary><code>{}</code> {}</summary>\n\n```diff\n{}```\n",
                    d.path,
                    d.state.describe(),
                    unified_diff(d)
                ));
                if !srcs.is_empty() {
                    out.push_str("\nSpec lines behind the new lines:\n\n");
                    for s in &srcs {
                        out.push_str(&format!("- `{s}`\n"));
                    }
                }
                out.push_str("\n</details>\n\n");
            } else {
                out.push_str(&format!("--- {} {}\n", d.path, d.state.describe()));
                out.push_str(&annotated_diff(b, files, d));
            }
        }
    }
    out
}

/// Spec origins of every added or changed line of a difference.
fn sources_for(b: &Build, files: &BTreeMap<&str, &Artifact>, d: &Difference) -> Vec<String> {
    let Some(artifact) = files.get(d.path.as_str()) else {
        return Vec::new();
    };
    let Some(model) = model_for(b, &d.path) else {
        return Vec::new();
    };
    let old = d.actual.as_deref().unwrap_or("");
    let diff = similar::TextDiff::from_lines(old, &artifact.text);
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for change in diff.iter_all_changes() {
        if change.tag() != similar::ChangeTag::Insert {
            continue;
        }
        let Some(idx) = change.new_index() else {
            continue;
        };
        for p in artifact.lines.get(idx).into_iter().flatten() {
            for o in origins_of(&b.project.sources, model, p) {
                if seen.insert(o.clone()) {
                    out.push(o);
                }
            }
        }
    }
    out
}

fn model_for<'a>(b: &'a Build, path: &str) -> Option<&'a Model> {
    let env = path
        .strip_prefix(&format!("{}/", b.project.output))?
        .split('/')
        .next()?;
    b.envs.iter().find(|e| e.name == env)?.model.as_ref()
}

/// A unified diff where each hunk is followed by the spec lines behind its new lines.
fn annotated_diff(b: &Build, files: &BTreeMap<&str, &Artifact>, d: &Difference) -> String {
    let old = d.actual.as_deref().unwrap_or("");
    let new = d.expected.as_deref().unwrap_or("");
    let diff = similar::TextDiff::from_lines(old, new);
    let artifact = files.get(d.path.as_str());
    let model = model_for(b, &d.path);
    let mut out = String::new();
    for hunk in diff.unified_diff().context_radius(3).iter_hunks() {
        out.push_str(&hunk.to_string());
        if !hunk.to_string().ends_with('\n') {
            out.push('\n');
        }
        let (Some(artifact), Some(model)) = (artifact, model) else {
            continue;
        };
        let mut seen = BTreeSet::new();
        for op in hunk.ops() {
            for change in diff.iter_changes(op) {
                if change.tag() != similar::ChangeTag::Insert {
                    continue;
                }
                let Some(idx) = change.new_index() else {
                    continue;
                };
                for p in artifact.lines.get(idx).into_iter().flatten() {
                    for o in origins_of(&b.project.sources, model, p) {
                        if seen.insert(o.clone()) {
                            out.push_str(&format!("  ^ {o}\n"));
                        }
                    }
                }
            }
        }
    }
    if d.state == State::Orphan {
        out.push_str("  (not generated by kiln: remove it, or move it out of the output folder)\n");
    }
    out
}
