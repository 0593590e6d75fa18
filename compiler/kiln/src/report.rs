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

/// Room for a pull-request comment (GitHub's limit is 65 536), with space to spare.
pub const COMMENT_CHARS: usize = 60_000;

/// How `kiln diff` reports.
#[derive(Clone, Debug, Default)]
pub struct DiffOptions {
    /// `--base REV`: the old side is that commit's generated files (the words are a review's:
    /// added, changed, removed).
    pub base: Option<String>,
    /// At most this many characters; the summary comes first, then the diffs that fit.
    pub max_chars: Option<usize>,
}

/// What a difference is, in a review's words.
fn change_word(state: State) -> &'static str {
    match state {
        State::Missing => "added",
        State::Removed | State::Orphan => "removed",
        _ => "changed",
    }
}

/// The (environment, target) of an output path `generated/<env>/<target>/…`.
fn env_target(path: &str) -> (String, String) {
    let parts: Vec<&str> = path.splitn(4, '/').collect();
    match parts.as_slice() {
        [_, env, target, _] => (env.to_string(), target.to_string()),
        [_, env, _] => (env.to_string(), String::new()),
        _ => (String::new(), String::new()),
    }
}

/// At most this many rows in the summary table; the rest are counted.
const SUMMARY_ROWS: usize = 40;

/// `kiln diff`: a summary of the changed files per environment and target, then unified
/// diffs grouped the same way, each hunk followed by the spec lines behind its new lines;
/// bounded by `max_chars` (the diffs that do not fit are counted, never cut in half).
pub fn diff_report(
    b: &Build,
    files: &BTreeMap<&str, &Artifact>,
    diffs: &[Difference],
    format: crate::DiffFormat,
    options: &DiffOptions,
) -> String {
    use crate::DiffFormat;
    if format == DiffFormat::Json {
        let list: Vec<Value> = diffs
            .iter()
            .map(|d| json!({"path": d.path, "state": d.state, "change": change_word(d.state), "diff": unified_diff(d), "sources": sources_for(b, files, d)}))
            .collect();
        let diagnostics: Vec<Value> = b
            .diagnostics
            .iter()
            .map(|d| {
                serde_json::to_value(kiln_core::diagnostic::JsonDiagnostic::new(
                    d,
                    &b.project.sources,
                ))
                .unwrap_or(Value::Null)
            })
            .collect();
        return format!(
            "{}\n",
            serde_json::to_string_pretty(&json!({
                "format_version": JSON_FORMAT_VERSION,
                "kiln": COMPILER_VERSION,
                "base": options.base,
                "diagnostics": diagnostics,
                "files": list,
            }))
            .unwrap_or_default()
        );
    }
    let markdown = format == DiffFormat::Markdown;
    let against = match &options.base {
        Some(rev) => format!(" since `{rev}`"),
        None => String::new(),
    };
    let mut out = String::new();
    if diffs.is_empty() {
        out.push_str(&if markdown {
            format!("**kiln**: no changes to generated files{against}.\n")
        } else {
            format!("kiln: no changes{against}\n")
        });
        return out;
    }
    let mut groups: BTreeMap<(String, String), Vec<&Difference>> = BTreeMap::new();
    for d in diffs {
        groups.entry(env_target(&d.path)).or_default().push(d);
    }
    // The summary: every changed file is counted, whatever the budget.
    let count = |list: &[&Difference], word: &str| {
        list.iter().filter(|d| change_word(d.state) == word).count()
    };
    if markdown {
        out.push_str(&format!(
            "### kiln: {} generated file(s) change{against}\n\n",
            diffs.len()
        ));
        out.push_str(
            "| environment | target | added | changed | removed |\n|---|---|---|---|---|\n",
        );
    } else {
        out.push_str(&format!(
            "kiln: {} generated file(s) change{against}\n",
            diffs.len()
        ));
    }
    for (i, ((env, target), list)) in groups.iter().enumerate() {
        if i == SUMMARY_ROWS {
            let rest: usize = groups.values().skip(SUMMARY_ROWS).map(Vec::len).sum();
            let line = format!(
                "{} more environment/target pair(s), {rest} file(s)",
                groups.len() - SUMMARY_ROWS
            );
            out.push_str(&if markdown {
                format!("| … | {line} | | | |\n")
            } else {
                format!("  … {line}\n")
            });
            break;
        }
        let (a, c, r) = (
            count(list, "added"),
            count(list, "changed"),
            count(list, "removed"),
        );
        out.push_str(&if markdown {
            format!("| `{env}` | `{target}` | {a} | {c} | {r} |\n")
        } else {
            format!("  {env} / {target}: {a} added, {c} changed, {r} removed\n")
        });
    }
    out.push('\n');
    let budget = options.max_chars.unwrap_or(usize::MAX);
    let mut shown = 0;
    let mut left_out = 0;
    let mut current_group: Option<&(String, String)> = None;
    for (key, list) in &groups {
        for d in list {
            let word = match options.base {
                Some(_) => change_word(d.state),
                None => d.state.describe(),
            };
            let mut block = String::new();
            if current_group != Some(key) {
                block.push_str(&if markdown {
                    format!("#### `{}` / `{}`\n\n", key.0, key.1)
                } else {
                    format!("=== {} / {}\n", key.0, key.1)
                });
            }
            if markdown {
                let srcs = sources_for(b, files, d);
                block.push_str(&format!(
                    "<details><summary><code>{}</code> {word}</summary>\n\n```diff\n{}```\n",
                    d.path,
                    unified_diff(d).replace("```", "` ` `")
                ));
                if !srcs.is_empty() {
                    block.push_str("\nSpec lines behind the new lines:\n\n");
                    for s in &srcs {
                        block.push_str(&format!("- `{}`\n", s.replace('`', "'")));
                    }
                }
                block.push_str("\n</details>\n\n");
            } else {
                block.push_str(&format!("--- {} {word}\n", d.path));
                block.push_str(&annotated_diff(b, files, d));
            }
            // Room for the closing line, too.
            if out.len() + block.len() + 200 > budget {
                left_out += 1;
                continue;
            }
            out.push_str(&block);
            current_group = Some(key);
            shown += 1;
        }
    }
    if left_out > 0 {
        let line = format!(
            "{left_out} more file(s) changed but are not shown here ({shown} shown; the report is bounded to {budget} characters): run `kiln diff{}` locally for all of them",
            options
                .base
                .as_ref()
                .map(|r| format!(" --base {r}"))
                .unwrap_or_default()
        );
        out.push_str(&if markdown {
            format!("_{line}_\n")
        } else {
            format!("kiln: {line}\n")
        });
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
