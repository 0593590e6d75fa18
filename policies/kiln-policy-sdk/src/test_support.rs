//! Running a policy natively in `cargo test`, with the checks kiln's host would make.
//!
//! ```
//! use kiln_policy_sdk::{Finding, Input, test_support};
//!
//! const METADATA: &str = r#"{"id":"demo","version":"1.0.0","summary":"demo policy",
//!   "rules":[{"id":"demo.always","default_severity":"info","summary":"always reports",
//!     "docs":{"what":"Reports.","why":"Demo.","example":"-","instead":"-"}}]}"#;
//!
//! fn check(_: &Input) -> Vec<Finding> {
//!     vec![Finding::new("demo.always", "hello").at("")]
//! }
//!
//! let findings = test_support::run(
//!     METADATA,
//!     check,
//!     r#"{"abi":"1.0","policy":{"id":"demo","settings":{}},"environment":"production",
//!         "tier":"production","spec":{}}"#,
//! );
//! assert_eq!(findings[0].message, "hello");
//! ```

use serde::Deserialize;
use serde_json::Value;

use crate::{Finding, Input, PolicyRef, Tier};

/// An input for `spec`: ABI 1.0, policy id `test` with no settings, environment and tier
/// `production`. Change the public fields for other cases.
pub fn input(spec: Value) -> Input {
    Input {
        abi: "1.0".into(),
        policy: PolicyRef {
            id: "test".into(),
            settings: Value::Object(Default::default()),
        },
        environment: "production".into(),
        tier: Tier::Production,
        spec,
        artifacts: Vec::new(),
        secret_values: Default::default(),
    }
}

/// Parses an input document (for instance the output of `kiln inspect`, wrapped as
/// policies/ABI.md describes). Panics with the reason if it is not one.
pub fn parse_input(json: &str) -> Input {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("not a policy input document: {e}"))
}

/// Runs `check` on the input document `input_json` the way kiln would: it panics if a finding
/// names a rule the metadata does not declare, has an empty message, or a path that is not a
/// JSON Pointer, just as the host refuses such output.
pub fn run(metadata: &str, check: fn(&Input) -> Vec<Finding>, input_json: &str) -> Vec<Finding> {
    let rules = check_metadata(metadata)
        .unwrap_or_else(|problem| panic!("the policy metadata is invalid: {problem}"));
    let mut input = parse_input(input_json);
    // kiln sends only the files of the targets the metadata names.
    let targets = serde_json::from_str::<Metadata>(metadata)
        .map(|m| m.targets)
        .unwrap_or_default();
    if !targets.is_empty() {
        input.artifacts.retain(|a| targets.contains(&a.target));
    }
    let findings = check(&input);
    for f in &findings {
        assert!(
            rules.contains(&f.rule),
            "a finding names the rule `{}`, which the metadata does not declare ({})",
            f.rule,
            rules.join(", ")
        );
        assert!(
            !f.message.trim().is_empty(),
            "a finding of `{}` has an empty message",
            f.rule
        );
        for path in f.path.iter().chain(f.related.iter().map(|r| &r.path)) {
            assert!(
                is_pointer(path),
                "`{path}` (in a finding of `{}`) is not a JSON Pointer",
                f.rule
            );
        }
        if let Some(a) = &f.artifact {
            assert!(a.line > 0, "artifact lines count from 1");
        }
    }
    findings
}

#[derive(Deserialize)]
struct Metadata {
    id: String,
    version: String,
    summary: String,
    #[serde(default)]
    inputs: Vec<String>,
    #[serde(default)]
    targets: Vec<String>,
    rules: Vec<Rule>,
    #[serde(default)]
    settings_schema: Option<Value>,
}

#[derive(Deserialize)]
struct Rule {
    id: String,
    /// Parsed so that an unknown severity is an error; not used otherwise.
    #[allow(dead_code)]
    default_severity: crate::Severity,
    summary: String,
    docs: Docs,
    #[serde(default)]
    #[allow(dead_code)]
    upstream: Vec<String>,
}

#[derive(Deserialize)]
struct Docs {
    what: String,
    why: String,
    example: String,
    instead: String,
}

/// Checks metadata JSON as kiln's host does, and more strictly: every docs section must be
/// filled in. Returns the declared rule ids.
pub fn check_metadata(metadata: &str) -> Result<Vec<String>, String> {
    let meta: Metadata = serde_json::from_str(metadata).map_err(|e| e.to_string())?;
    if !is_kebab(&meta.id) {
        return Err(format!("the policy id `{}` is not kebab-case", meta.id));
    }
    if meta.version.trim().is_empty() || meta.summary.trim().is_empty() {
        return Err("`version` and `summary` must not be empty".into());
    }
    if !meta.inputs.is_empty() && !meta.inputs.iter().any(|i| i == "spec") {
        return Err("`inputs` must contain \"spec\"".into());
    }
    if let Some(i) = meta
        .inputs
        .iter()
        .find(|i| !matches!(i.as_str(), "spec" | "artifacts" | "secret-values"))
    {
        return Err(format!(
            "unknown input `{i}` (expected spec, artifacts or secret-values)"
        ));
    }
    if !meta.targets.is_empty() && !meta.inputs.iter().any(|i| i == "artifacts") {
        return Err("`targets` needs \"artifacts\" among the `inputs`".into());
    }
    if let Some(t) = meta.targets.iter().find(|t| !is_kebab(t)) {
        return Err(format!("the target `{t}` is not a kebab-case target name"));
    }
    if meta
        .settings_schema
        .as_ref()
        .is_some_and(|s| !s.is_object())
    {
        return Err("`settings_schema` must be an object".into());
    }
    if meta.rules.is_empty() {
        return Err("`rules` is empty".into());
    }
    let mut ids: Vec<String> = Vec::new();
    for rule in &meta.rules {
        let valid = rule
            .id
            .split_once('.')
            .is_some_and(|(group, name)| is_kebab(group) && is_kebab(name));
        if !valid {
            return Err(format!(
                "the rule id `{}` is not `<group>.<name>` in kebab-case",
                rule.id
            ));
        }
        if ids.contains(&rule.id) {
            return Err(format!("the rule `{}` is declared twice", rule.id));
        }
        let d = &rule.docs;
        if [&rule.summary, &d.what, &d.why, &d.example, &d.instead]
            .iter()
            .any(|s| s.trim().is_empty())
        {
            return Err(format!(
                "the rule `{}` needs a summary and all of docs.what, why, example, instead",
                rule.id
            ));
        }
        ids.push(rule.id.clone());
    }
    Ok(ids)
}

fn is_kebab(s: &str) -> bool {
    s.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
        && s.split('-').all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

fn is_pointer(p: &str) -> bool {
    (p.is_empty() || p.starts_with('/'))
        && p.split('~')
            .skip(1)
            .all(|rest| rest.starts_with(['0', '1']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers() {
        assert!(is_pointer(""));
        assert!(is_pointer("/a~0b~1c"));
        assert!(!is_pointer("a"));
        assert!(!is_pointer("/a~"));
        assert!(!is_pointer("/a~2"));
    }

    #[test]
    fn metadata_problems_are_reported() {
        let ok = r#"{"id":"web","version":"1","summary":"s","rules":[{"id":"web.debug-off",
            "default_severity":"error","summary":"s",
            "docs":{"what":"w","why":"y","example":"e","instead":"i"}}]}"#;
        assert_eq!(check_metadata(ok).unwrap(), ["web.debug-off"]);
        let short = ok.replace("web.debug-off", "debug-off");
        assert!(check_metadata(&short).unwrap_err().contains("debug-off"));
        let no_docs = ok.replace(r#""why":"y""#, r#""why":" ""#);
        assert!(check_metadata(&no_docs).is_err());
        assert!(check_metadata("{").is_err());
    }
}
