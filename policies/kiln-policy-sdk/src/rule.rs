//! A policy's metadata as Rust constants, so each rule's documentation lives in the file that
//! implements it (one rule per file, like ruff's `rules/*.rs`), and `policy.json` is generated
//! from them.
//!
//! ```
//! use kiln_policy_sdk::rule::{PolicyDocs, RuleDocs};
//! use kiln_policy_sdk::Severity;
//!
//! const DEBUG_OFF: RuleDocs = RuleDocs {
//!     id: "web.debug-off",
//!     default_severity: Severity::Error,
//!     summary: "DEBUG is on in a deployed environment",
//!     what: "Reports DEBUG set to a true value.",
//!     why: "Debug pages leak settings.",
//!     example: "env { DEBUG #true }",
//!     instead: "env { DEBUG #false }",
//!     upstream: &["DJ W018"],
//! };
//! const POLICY: PolicyDocs = PolicyDocs {
//!     id: "web",
//!     version: "1.0.0",
//!     summary: "Django deployment settings",
//!     inputs: &["spec"],
//!     targets: &[],
//!     rules: &[&DEBUG_OFF],
//!     settings_schema: r#"{"type": "object", "additionalProperties": false}"#,
//! };
//! let json = POLICY.metadata_json();
//! assert!(kiln_policy_sdk::test_support::check_metadata(&json).is_ok());
//! ```
//!
//! A crate keeps the generated `policy.json` next to its `Cargo.toml`, embeds it with
//! `kiln_policy!{ metadata: include_str!("../policy.json"), … }`, and has a test that compares
//! it with [`PolicyDocs::metadata_json`] (see [`PolicyDocs::check_file`]).

use serde_json::{Value, json};

use crate::Severity;

/// One rule's id, default severity and documentation (policies/ABI.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleDocs {
    /// The full id, `<policy>.<rule>`.
    pub id: &'static str,
    pub default_severity: Severity,
    /// One line saying what is flagged.
    pub summary: &'static str,
    /// What it does (prose).
    pub what: &'static str,
    /// Why is this bad? (prose).
    pub why: &'static str,
    /// A KDL snippet of an environment body that triggers exactly one finding.
    pub example: &'static str,
    /// The fixed snippet.
    pub instead: &'static str,
    /// The ids of the same check upstream (`DJ W018`, `CIS 5.26`).
    pub upstream: &'static [&'static str],
}

/// A policy's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyDocs {
    pub id: &'static str,
    pub version: &'static str,
    pub summary: &'static str,
    /// `["spec"]`, `["spec", "artifacts"]`, … (policies/ABI.md §6).
    pub inputs: &'static [&'static str],
    /// With `"artifacts"` among the inputs: the targets whose rendered files the policy reads
    /// (`&["nginx"]`); empty for every target. kiln sends only those files, so a policy that
    /// reads one target does not pay for parsing the others (policies/ABI.md §6, ABI 1.1).
    pub targets: &'static [&'static str],
    pub rules: &'static [&'static RuleDocs],
    /// A JSON Schema, as JSON text.
    pub settings_schema: &'static str,
}

impl PolicyDocs {
    /// The metadata JSON (pretty-printed, with a final newline), as `policy.json` holds it.
    ///
    /// Panics if `settings_schema` is not JSON: a bug in the policy.
    pub fn metadata_json(&self) -> String {
        let schema: Value = serde_json::from_str(self.settings_schema)
            .unwrap_or_else(|e| panic!("the settings schema of `{}` is not JSON: {e}", self.id));
        let rules: Vec<Value> = self
            .rules
            .iter()
            .map(|r| {
                json!({
                    "id": r.id,
                    "default_severity": r.default_severity,
                    "summary": r.summary,
                    "docs": {
                        "what": r.what,
                        "why": r.why,
                        "example": r.example,
                        "instead": r.instead,
                    },
                    "upstream": r.upstream,
                })
            })
            .collect();
        let mut doc = json!({
            "id": self.id,
            "version": self.version,
            "summary": self.summary,
            "inputs": self.inputs,
            "rules": rules,
            "settings_schema": schema,
        });
        if !self.targets.is_empty() {
            doc["targets"] = json!(self.targets);
        }
        let mut text = serde_json::to_string_pretty(&doc).expect("metadata serializes");
        text.push('\n');
        text
    }

    /// For a test: checks that the file at `path` (the crate's `policy.json`) holds exactly
    /// [`metadata_json`](PolicyDocs::metadata_json), that the metadata is valid and that every
    /// rule has docs and an upstream id. With the environment variable `KILN_UPDATE_METADATA=1`
    /// it rewrites the file instead.
    pub fn check_file(&self, path: &str) -> Result<(), String> {
        let json = self.metadata_json();
        crate::test_support::check_metadata(&json)?;
        for r in self.rules {
            if r.upstream.iter().all(|u| u.trim().is_empty()) {
                return Err(format!("the rule `{}` names no upstream id", r.id));
            }
            if !r.id.starts_with(&format!("{}.", self.id)) {
                return Err(format!("the rule `{}` is not in group `{}`", r.id, self.id));
            }
        }
        if std::env::var_os("KILN_UPDATE_METADATA").is_some_and(|v| v == "1") {
            return std::fs::write(path, &json).map_err(|e| format!("cannot write {path}: {e}"));
        }
        let on_disk =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        if on_disk != json {
            return Err(format!(
                "{path} is not up to date with the rules' docs: run the tests with KILN_UPDATE_METADATA=1"
            ));
        }
        Ok(())
    }
}
