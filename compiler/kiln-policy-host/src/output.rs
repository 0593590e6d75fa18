//! What `kiln_check` and `kiln_validate_settings` return, and how the host checks it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{PolicyErrorKind, truncate_chars};
use crate::meta::{PolicyMeta, Severity, collect_unknown};

/// The parsed output of `kiln_check`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyOutput {
    /// The findings, in the order the policy reported them.
    pub findings: Vec<RawFinding>,
}

/// One finding as the policy reported it, before the host maps its path to a spec span and
/// applies the spec's severity overrides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawFinding {
    /// The full id of a rule the metadata declares (`web.debug-off`).
    pub rule: String,
    /// Overrides the rule's `default_severity` for this finding; `None` means the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// What is wrong, in one sentence.
    pub message: String,
    /// An RFC 6901 JSON Pointer into the input's `spec` (`/services/web/env/DEBUG`). The host
    /// maps it to the KDL span that set that value, or the nearest existing parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A line of a rendered artifact (only for policies that receive artifacts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<ArtifactRef>,
    /// What to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// Other places that explain the finding ("HSTS is set here").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<Related>,
}

/// A line in a rendered artifact, as given in the input's `artifacts[].path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRef {
    /// The artifact's path, exactly as in the input (`nginx/api.tulia.example.conf`).
    pub path: String,
    /// The 1-based line number.
    pub line: u32,
}

/// A secondary location of a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Related {
    /// An RFC 6901 JSON Pointer into the input's `spec`.
    pub path: String,
    /// What is at that place.
    pub message: String,
}

/// One problem `kiln_validate_settings` found in a policy's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsError {
    /// An RFC 6901 JSON Pointer into the settings object (`""` for the whole object).
    pub path: String,
    /// What is wrong with the value there.
    pub message: String,
}

#[derive(Deserialize)]
struct SettingsOutput {
    errors: Vec<SettingsError>,
}

/// How much of the output an error message may quote.
const MAX_QUOTED: usize = 200;

fn malformed(function: &'static str, reason: impl Into<String>) -> PolicyErrorKind {
    PolicyErrorKind::MalformedOutput {
        function,
        reason: truncate_chars(&reason.into(), MAX_QUOTED),
    }
}

/// JSON whose objects have no key twice: `serde_json::Value` keeps the last of two equal
/// keys, so a module writing `"severity":"error"` then `"severity":"info"` in one finding
/// would be read as it was not meant to, silently.
pub(crate) fn strict_json(bytes: &[u8]) -> serde_json::Result<Value> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = NoDuplicateKeys.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Deserializes a [`Value`], refusing an object with a key twice.
#[derive(Clone, Copy)]
struct NoDuplicateKeys;

impl<'de> serde::de::DeserializeSeed<'de> for NoDuplicateKeys {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for NoDuplicateKeys {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "the key {:?} appears twice in one object",
                    truncate_chars(&key, 40)
                )));
            }
            let value = map.next_value_seed(self)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// Parses UTF-8 JSON, with an error that quotes at most a short excerpt near the problem.
fn parse_json(function: &'static str, bytes: &[u8]) -> Result<Value, PolicyErrorKind> {
    let text =
        std::str::from_utf8(bytes).map_err(|e| malformed(function, format!("not UTF-8: {e}")))?;
    strict_json(text.as_bytes()).map_err(|e| {
        let line = text.lines().nth(e.line().saturating_sub(1)).unwrap_or("");
        let col = e.column().saturating_sub(1);
        let start = line
            .char_indices()
            .map(|(i, _)| i)
            .rfind(|&i| i <= col.saturating_sub(30))
            .unwrap_or(0);
        let excerpt = truncate_chars(&line[start..], 60);
        let what = match e.classify() {
            serde_json::error::Category::Data => "not valid",
            _ => "not JSON",
        };
        malformed(function, format!("{what}: {e}, near {excerpt:?}"))
    })
}

/// Parses and checks the output of `kiln_check`.
///
/// `strict` rejects fields ABI 1.0 does not define (a typo like `"hepl"` would otherwise be
/// dropped silently); it is off for modules that declare a newer minor ABI version than the
/// host, whose additive fields the host cannot know.
pub(crate) fn parse_check_output(
    bytes: &[u8],
    meta: &PolicyMeta,
    strict: bool,
) -> Result<PolicyOutput, PolicyErrorKind> {
    const F: &str = "kiln_check";
    let value = parse_json(F, bytes)?;
    if strict {
        let mut unknown = Vec::new();
        collect_unknown(&value, &["findings"], "", &mut unknown);
        if let Some(findings) = value.get("findings").and_then(Value::as_array) {
            for (i, f) in findings.iter().enumerate() {
                let at = format!("findings[{i}].");
                collect_unknown(
                    f,
                    &[
                        "rule", "severity", "message", "path", "artifact", "help", "related",
                    ],
                    &at,
                    &mut unknown,
                );
                if let Some(a) = f.get("artifact") {
                    collect_unknown(
                        a,
                        &["path", "line"],
                        &format!("{at}artifact."),
                        &mut unknown,
                    );
                }
                if let Some(rel) = f.get("related").and_then(Value::as_array) {
                    for (j, r) in rel.iter().enumerate() {
                        collect_unknown(
                            r,
                            &["path", "message"],
                            &format!("{at}related[{j}]."),
                            &mut unknown,
                        );
                    }
                }
            }
        }
        if let Some(first) = unknown.first() {
            return Err(malformed(F, format!("unknown field `{first}`")));
        }
    }
    let output: PolicyOutput =
        serde_json::from_value(value).map_err(|e| malformed(F, e.to_string()))?;
    for (i, f) in output.findings.iter().enumerate() {
        if meta.rule(&f.rule).is_none() {
            return Err(undeclared(&f.rule, meta));
        }
        if f.message.trim().is_empty() {
            return Err(malformed(F, format!("findings[{i}].message is empty")));
        }
        if let Some(p) = &f.path {
            check_pointer(p).map_err(|e| malformed(F, format!("findings[{i}].path {e}")))?;
        }
        for (j, r) in f.related.iter().enumerate() {
            check_pointer(&r.path)
                .map_err(|e| malformed(F, format!("findings[{i}].related[{j}].path {e}")))?;
        }
        if let Some(a) = &f.artifact {
            if !meta.wants_artifacts() {
                return Err(malformed(
                    F,
                    format!(
                        "findings[{i}] names an artifact, but the metadata's `inputs` does not ask for artifacts"
                    ),
                ));
            }
            if a.line == 0 {
                return Err(malformed(
                    F,
                    format!("findings[{i}].artifact.line is 0 (lines count from 1)"),
                ));
            }
        }
    }
    Ok(output)
}

/// Parses the output of `kiln_validate_settings`.
pub(crate) fn parse_settings_output(
    bytes: &[u8],
    strict: bool,
) -> Result<Vec<SettingsError>, PolicyErrorKind> {
    const F: &str = "kiln_validate_settings";
    let value = parse_json(F, bytes)?;
    if strict {
        let mut unknown = Vec::new();
        collect_unknown(&value, &["errors"], "", &mut unknown);
        if let Some(errors) = value.get("errors").and_then(Value::as_array) {
            for (i, e) in errors.iter().enumerate() {
                collect_unknown(
                    e,
                    &["path", "message"],
                    &format!("errors[{i}]."),
                    &mut unknown,
                );
            }
        }
        if let Some(first) = unknown.first() {
            return Err(malformed(F, format!("unknown field `{first}`")));
        }
    }
    let out: SettingsOutput =
        serde_json::from_value(value).map_err(|e| malformed(F, e.to_string()))?;
    for (i, e) in out.errors.iter().enumerate() {
        check_pointer(&e.path).map_err(|err| malformed(F, format!("errors[{i}].path {err}")))?;
    }
    Ok(out.errors)
}

fn undeclared(rule: &str, meta: &PolicyMeta) -> PolicyErrorKind {
    let declared: Vec<String> = meta.rules.iter().map(|r| r.id.clone()).collect();
    // The usual mistake is the short name (`debug-off` for `web.debug-off`).
    let suggestion = declared
        .iter()
        .find(|id| id.split_once('.').is_some_and(|(_, name)| name == rule))
        .cloned();
    PolicyErrorKind::UndeclaredRule {
        rule: truncate_chars(rule, 80),
        suggestion,
        declared,
    }
}

/// Checks RFC 6901 syntax: empty, or `/`-separated segments where `~` is only `~0` or `~1`.
fn check_pointer(p: &str) -> Result<(), String> {
    if !p.is_empty() && !p.starts_with('/') {
        return Err(format!(
            "{:?} is not a JSON Pointer (it must be empty or start with `/`)",
            truncate_chars(p, 60)
        ));
    }
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!(
                "{:?} is not a JSON Pointer (`~` must be followed by 0 or 1)",
                truncate_chars(p, 60)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers() {
        assert!(check_pointer("").is_ok());
        assert!(check_pointer("/a/b~0c~1d").is_ok());
        assert!(check_pointer("a").is_err());
        assert!(check_pointer("/a~").is_err());
        assert!(check_pointer("/a~2").is_err());
    }

    #[test]
    fn a_key_twice_is_refused() {
        assert!(strict_json(br#"{"a":1,"b":[{"c":1,"d":2}]}"#).is_ok());
        let err = strict_json(br#"{"findings":[{"rule":"t.r","rule":"t.s"}]}"#).unwrap_err();
        assert!(err.to_string().contains("\"rule\" appears twice"), "{err}");
        assert!(strict_json(br#"{"a":1} x"#).is_err());
    }

    #[test]
    fn json_errors_quote_little() {
        let long = format!("{{\"findings\": [{}", "x".repeat(10_000));
        let err = parse_json("kiln_check", long.as_bytes()).unwrap_err();
        assert!(err.to_string().chars().count() < 300, "{err}");
    }
}
