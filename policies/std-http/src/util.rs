//! Reading sites, their headers, and the Django services behind them.

use kiln_policy_sdk::{Finding, Severity, json_pointer};
use serde_json::Value;

/// Whether the site serves HTTPS.
pub fn tls_on(site: &Value) -> bool {
    site.pointer("/tls/mode").and_then(Value::as_str) != Some("off")
}

/// A site header by name (case-insensitive): its spelling in the spec and its value.
pub fn header<'a>(site: &'a Value, name: &str) -> Option<(&'a str, &'a str)> {
    site.get("headers")?
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(k, v)| Some((k.as_str(), v.as_str()?)))
}

/// The pointer of a site header (as spelled in the spec), or of the site's headers.
pub fn header_pointer(key: &str, spelled: Option<&str>) -> String {
    match spelled {
        Some(name) => json_pointer(["sites", key, "headers", name]),
        None => json_pointer(["sites", key, "headers"]),
    }
}

/// The Django services a site proxies to.
pub fn django_upstreams<'a>(spec: &'a Value, site: &'a Value) -> Vec<(&'a str, &'a Value)> {
    let mut names: Vec<&str> = Vec::new();
    if let Some(u) = site.get("upstream").and_then(Value::as_str) {
        names.push(u);
    }
    if let Some(locs) = site.get("locations").and_then(Value::as_object) {
        for l in locs.values() {
            let upstream = l.get("upstream").and_then(Value::as_str);
            if let Some(u) = upstream.filter(|u| !names.contains(u)) {
                names.push(u);
            }
        }
    }
    names
        .into_iter()
        .filter_map(|n| {
            let s = spec.get("services")?.get(n)?;
            let server = matches!(
                s.pointer("/run/program").and_then(Value::as_str),
                Some("gunicorn" | "uvicorn" | "daphne" | "hypercorn" | "granian")
            );
            let django = server
                && (s
                    .pointer("/env/DJANGO_SETTINGS_MODULE")
                    .is_some_and(|v| !v.is_null())
                    || matches!(
                        s.get("preset").and_then(Value::as_str),
                        Some("django-web" | "daphne")
                    ));
            django.then_some((n, s))
        })
        .collect()
}

/// An integer setting written as a number or a numeric string.
pub fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// How Django reads a boolean setting from the environment.
pub fn truthy(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_f64().map(|f| f != 0.0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Some(true),
            "0" | "false" | "no" | "off" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// The JSON pointer to blame for a service's variable: `/env/VAR` when inherited unchanged.
pub fn env_pointer(spec: &Value, service: &str, var: &str) -> String {
    let own = spec.pointer(&json_pointer(["services", service, "env", var]));
    let shared = spec.pointer(&json_pointer(["env", var]));
    match (own, shared) {
        (Some(a), Some(b)) if a == b => json_pointer(["env", var]),
        _ => json_pointer(["services", service, "env", var]),
    }
}

/// A finding with `severity` set when it differs from the rule's default.
pub fn with_severity(finding: Finding, severity: Severity, default: Severity) -> Finding {
    if severity == default {
        finding
    } else {
        finding.severity(severity)
    }
}
