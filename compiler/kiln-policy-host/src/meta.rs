//! The policy metadata embedded in the `kiln.policy.v1` custom section.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How serious a finding is. The spec can override a rule's severity per tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Shown only when asked for.
    Info,
    /// Shown, does not fail the compile.
    Warn,
    /// Fails the compile (exit code 1).
    Error,
}

impl Severity {
    /// The spelling used in JSON and in the spec: `error`, `warn` or `info`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warn => "warn",
            Severity::Info => "info",
        }
    }
}

/// What a policy asks to receive besides the resolved model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputKind {
    /// The resolved model (always present).
    Spec,
    /// The rendered files of every target.
    Artifacts,
    /// The real values of the environment's declared secrets, during
    /// `kiln secrets check` only (the `secret-values` key of the input).
    SecretValues,
}

/// The contents of a policy's `kiln.policy.v1` custom section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyMeta {
    /// The policy id, kebab-case (`web`, `secret`).
    pub id: String,
    /// The policy's own version (free text, usually semver); recorded in `kiln.lock`.
    pub version: String,
    /// One line saying what the policy checks.
    pub summary: String,
    /// What the policy receives: `["spec"]` (the default) or `["spec", "artifacts"]`.
    #[serde(default = "default_inputs")]
    pub inputs: Vec<InputKind>,
    /// ABI 1.1: with `"artifacts"` among the inputs, the targets whose rendered files the
    /// policy reads (`["nginx"]`); `None` for every target. The host itself does not know what
    /// a target is: the caller filters the artifacts it sends (see [`PolicyMeta::reads_target`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<String>>,
    /// The rules the policy may report. A finding for any other rule is an error.
    pub rules: Vec<RuleMeta>,
    /// A JSON Schema for the policy's settings (`{}` when it has none). kiln shows it in
    /// `kiln explain` and `kiln policy list`; validation is the policy's job, through
    /// `kiln_validate_settings`.
    #[serde(default = "empty_object")]
    pub settings_schema: Value,
    /// Rule id → its index in `rules`: a finding is looked up in constant time.
    #[serde(skip)]
    index: std::collections::HashMap<String, usize>,
}

/// One rule a policy declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleMeta {
    /// The full rule id, `<group>.<name>` in kebab-case (`web.debug-off`). Stable forever.
    pub id: String,
    /// The severity when the spec does not override it.
    pub default_severity: Severity,
    /// One line saying what the rule flags.
    pub summary: String,
    /// The rule's documentation, printed by `kiln explain RULE`.
    pub docs: RuleDocs,
    /// The ids of the same check in upstream tools (`DJ W018`, `CKV_K8S_20`, `CIS 5.26`).
    #[serde(default)]
    pub upstream: Vec<String>,
}

/// A rule's documentation in fixed sections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleDocs {
    /// What it does.
    pub what: String,
    /// Why is this bad?
    pub why: String,
    /// Example: a KDL snippet that triggers exactly one finding.
    pub example: String,
    /// Use instead: the fixed snippet.
    pub instead: String,
}

fn default_inputs() -> Vec<InputKind> {
    vec![InputKind::Spec]
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

impl PolicyMeta {
    /// The rule with this full id.
    pub fn rule(&self, id: &str) -> Option<&RuleMeta> {
        match self.index.is_empty() {
            true => self.rules.iter().find(|r| r.id == id),
            false => self.index.get(id).map(|&i| &self.rules[i]),
        }
    }

    /// Whether the policy asked for the rendered artifacts (`"inputs": ["spec", "artifacts"]`).
    pub fn wants_artifacts(&self) -> bool {
        self.inputs.contains(&InputKind::Artifacts)
    }

    /// Whether the policy receives the rendered files of `target`: it asked for artifacts, and
    /// either named no targets or named this one.
    pub fn reads_target(&self, target: &str) -> bool {
        self.wants_artifacts()
            && self
                .targets
                .as_ref()
                .is_none_or(|t| t.iter().any(|t| t == target))
    }

    /// Parses and checks metadata leniently: unknown fields are ignored here and checked by
    /// [`unknown_fields`] once the ABI minor version is known.
    pub(crate) fn parse(bytes: &[u8]) -> Result<(PolicyMeta, Value), String> {
        let value = crate::output::strict_json(bytes).map_err(|e| format!("not JSON: {e}"))?;
        let mut meta: PolicyMeta =
            serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
        meta.validate()?;
        meta.index = meta
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.clone(), i))
            .collect();
        Ok((meta, value))
    }

    fn validate(&self) -> Result<(), String> {
        if !is_kebab(&self.id) {
            return Err(format!(
                "the policy id `{}` is not kebab-case (like `web` or `secret-kinds`)",
                self.id
            ));
        }
        if self.version.trim().is_empty() {
            return Err("`version` is empty".into());
        }
        if !self.inputs.contains(&InputKind::Spec) {
            return Err("`inputs` must contain \"spec\"".into());
        }
        if let Some(targets) = &self.targets {
            if !self.wants_artifacts() {
                return Err("`targets` needs \"artifacts\" among the `inputs`".into());
            }
            if let Some(t) = targets.iter().find(|t| !is_kebab(t)) {
                return Err(format!(
                    "the target `{}` is not a kebab-case target name (like `nginx`)",
                    truncate(t)
                ));
            }
        }
        if !self.settings_schema.is_object() {
            return Err("`settings_schema` must be a JSON object (use {} for none)".into());
        }
        if self.rules.is_empty() {
            return Err("`rules` is empty: a policy must declare the rules it reports".into());
        }
        let mut seen = std::collections::HashSet::with_capacity(self.rules.len());
        for rule in &self.rules {
            if !is_rule_id(&rule.id) {
                return Err(format!(
                    "the rule id `{}` is not `<group>.<name>` in kebab-case (like `web.debug-off`)",
                    rule.id
                ));
            }
            if !seen.insert(rule.id.as_str()) {
                return Err(format!("the rule `{}` is declared twice", rule.id));
            }
            if rule.summary.trim().is_empty() {
                return Err(format!("the rule `{}` has an empty `summary`", rule.id));
            }
        }
        Ok(())
    }
}

/// The field names ABI 1.`minor` defines, for the strict check of unknown fields.
pub(crate) fn unknown_fields(value: &Value, minor: u16) -> Vec<String> {
    const TOP_1_0: &[&str] = &[
        "id",
        "version",
        "summary",
        "inputs",
        "rules",
        "settings_schema",
    ];
    const TOP_1_1: &[&str] = &[
        "id",
        "version",
        "summary",
        "inputs",
        "targets",
        "rules",
        "settings_schema",
    ];
    const TOP: &[&[&str]] = &[TOP_1_0, TOP_1_1];
    let top = TOP[usize::from(minor).min(TOP.len() - 1)];
    const RULE: &[&str] = &["id", "default_severity", "summary", "docs", "upstream"];
    const DOCS: &[&str] = &["what", "why", "example", "instead"];
    let mut unknown = Vec::new();
    collect_unknown(value, top, "", &mut unknown);
    if let Some(rules) = value.get("rules").and_then(Value::as_array) {
        for (i, rule) in rules.iter().enumerate() {
            collect_unknown(rule, RULE, &format!("rules[{i}]."), &mut unknown);
            if let Some(docs) = rule.get("docs") {
                collect_unknown(docs, DOCS, &format!("rules[{i}].docs."), &mut unknown);
            }
        }
    }
    unknown
}

pub(crate) fn collect_unknown(value: &Value, known: &[&str], prefix: &str, out: &mut Vec<String>) {
    if let Some(map) = value.as_object() {
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                out.push(format!("{prefix}{key}"));
            }
        }
    }
}

fn truncate(s: &str) -> String {
    crate::error::truncate_chars(s, 80)
}

/// `web`, `secret-kinds`: lower-case ASCII words joined by single hyphens.
pub(crate) fn is_kebab(s: &str) -> bool {
    !s.is_empty()
        && s.split('-').all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && s.as_bytes()[0].is_ascii_lowercase()
}

/// `web.debug-off`: two kebab-case parts joined by one dot.
pub(crate) fn is_rule_id(s: &str) -> bool {
    matches!(s.split_once('.'), Some((group, name)) if is_kebab(group) && is_kebab(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(is_kebab("web"));
        assert!(is_kebab("secret-kinds2"));
        assert!(!is_kebab("Web"));
        assert!(!is_kebab("web-"));
        assert!(!is_kebab("-web"));
        assert!(!is_kebab("2web"));
        assert!(!is_kebab("web--x"));
        assert!(is_rule_id("web.debug-off"));
        assert!(!is_rule_id("debug-off"));
        assert!(!is_rule_id("web.debug.off"));
        assert!(!is_rule_id("web."));
    }
}
