//! Reading the resolved model: environment values, Django processes, the sites in front of a
//! service, and Django's host matching.

use kiln_policy_sdk::{Finding, Input, Severity, json_pointer};
use serde_json::Value;

/// How Django and the usual env parsers (django-environ, `os.environ.get(...) in ("1", …)`)
/// read a value as a boolean: `Some(true)` for `#true`, 1 and `1/true/yes/on`; `Some(false)`
/// for `#false`, 0, `""` and `0/false/no/off`; `None` for anything else.
pub fn truthy(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_f64().map(|f| f != 0.0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" | "y" | "t" => Some(true),
            "0" | "false" | "no" | "off" | "n" | "f" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// The JSON pointer to blame for variable `var` of service `service`: the environment-wide
/// `/env/VAR` when the service inherits it unchanged, else the service's own value.
pub fn env_pointer(input: &Input, service: &str, var: &str) -> String {
    let own = input.pointer(&json_pointer(["services", service, "env", var]));
    let shared = input.pointer(&json_pointer(["env", var]));
    match (own, shared) {
        (Some(a), Some(b)) if a == b => json_pointer(["env", var]),
        _ => json_pointer(["services", service, "env", var]),
    }
}

/// Whether a service runs Django: its environment names a settings module, or it uses one
/// of the Django presets, or it serves a `wsgi`/`asgi` application under gunicorn or daphne.
/// Whether a Python WSGI/ASGI server runs the service's app (the processes that can read
/// the app's host settings: not a dashboard, a mail catcher or an nginx frontend).
pub fn is_python_app_server(service: &Value) -> bool {
    matches!(
        service.pointer("/run/program").and_then(Value::as_str),
        Some("gunicorn" | "uvicorn" | "daphne" | "hypercorn" | "granian")
    )
}

pub fn is_django(service: &Value) -> bool {
    // Only a WSGI/ASGI server handles Django's requests: a dashboard (Flower), a mail catcher
    // or any other command of the environment does not, whatever variables it inherits.
    if !is_python_app_server(service) {
        return false;
    }
    if service
        .pointer("/env/DJANGO_SETTINGS_MODULE")
        .is_some_and(|v| !v.is_null())
    {
        return true;
    }
    if matches!(
        service.get("preset").and_then(Value::as_str),
        Some("django-web" | "daphne")
    ) {
        return true;
    }
    let program = service.pointer("/run/program").and_then(Value::as_str);
    let app = service
        .pointer("/run/app")
        .and_then(Value::as_str)
        .unwrap_or("");
    matches!(program, Some("gunicorn" | "daphne"))
        && (app.contains(".wsgi:") || app.contains(".asgi:"))
}

/// Whether a service is a web process (gunicorn, uvicorn, daphne, or declared `kind web`).
pub fn is_web(service: &Value) -> bool {
    service.get("kind").and_then(Value::as_str) == Some("web")
}

/// The sites whose requests reach `service` (as the site's upstream or a location's).
pub fn sites_of<'a>(input: &'a Input, service: &str) -> Vec<(&'a str, &'a Value)> {
    input
        .sites()
        .filter(|(_, site)| {
            site.get("upstream").and_then(Value::as_str) == Some(service)
                || site
                    .get("locations")
                    .and_then(Value::as_object)
                    .is_some_and(|locs| {
                        locs.values()
                            .any(|l| l.get("upstream").and_then(Value::as_str) == Some(service))
                    })
        })
        .collect()
}

/// A site's server names.
pub fn server_names(site: &Value) -> Vec<&str> {
    site.get("server-names")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Whether the site serves HTTPS (kiln then redirects its port 80 to HTTPS).
pub fn tls_on(site: &Value) -> bool {
    site.pointer("/tls/mode").and_then(Value::as_str) != Some("off")
}

/// The entries of a list-valued variable: `a,b`, `a b`, or a JSON-ish `["a", "b"]`.
pub fn list_entries(text: &str) -> Vec<String> {
    text.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(|c: char| c == ',' || c.is_whitespace())
        .map(|s| s.trim().trim_matches(|c| c == '"' || c == '\''))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Django's `validate_host` for one pattern: `*` matches everything, `.example.com` matches
/// `example.com` and its subdomains, anything else must be equal (case-insensitive).
pub fn host_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if pattern == "*" {
        return true;
    }
    match pattern.strip_prefix('.') {
        Some(domain) => host == domain || host.ends_with(&pattern),
        None => pattern.trim_end_matches('.') == host,
    }
}

/// Names only a local client uses (health checks inside the container, `manage.py` on the
/// host); they never reach Django through nginx.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    matches!(host.as_str(), "localhost" | "127.0.0.1" | "::1" | "[::1]")
        || host.ends_with(".localhost")
        || host.starts_with("127.")
}

/// A finding with `severity` set when it differs from the rule's default.
pub fn with_severity(finding: Finding, severity: Severity, default: Severity) -> Finding {
    if severity == default {
        finding
    } else {
        finding.severity(severity)
    }
}

/// `a`, `a and b`, `a, b and c`.
pub fn and_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn truthiness() {
        for v in [
            json!(true),
            json!(1),
            json!("1"),
            json!("True"),
            json!(" yes "),
            json!("ON"),
        ] {
            assert_eq!(truthy(&v), Some(true), "{v}");
        }
        for v in [
            json!(false),
            json!(0),
            json!("0"),
            json!("False"),
            json!("off"),
            json!(""),
        ] {
            assert_eq!(truthy(&v), Some(false), "{v}");
        }
        for v in [
            json!("maybe"),
            json!(null),
            json!({"secret": "X"}),
            json!([1]),
        ] {
            assert_eq!(truthy(&v), None, "{v}");
        }
    }

    #[test]
    fn django_host_matching() {
        assert!(host_matches("*", "anything.example"));
        assert!(host_matches(".example.com", "example.com"));
        assert!(host_matches(".example.com", "api.example.com"));
        assert!(!host_matches(".example.com", "badexample.com"));
        assert!(host_matches("API.example.com", "api.example.com."));
        assert!(!host_matches("api.example.com", "www.example.com"));
        assert!(is_loopback("localhost") && is_loopback("127.0.0.1") && is_loopback("[::1]"));
        assert!(!is_loopback("10.0.0.1"));
    }

    #[test]
    fn lists() {
        assert_eq!(
            list_entries("a.example, b.example"),
            ["a.example", "b.example"]
        );
        assert_eq!(list_entries("[\"a\", 'b']"), ["a", "b"]);
        assert_eq!(list_entries("a b"), ["a", "b"]);
        assert!(list_entries(" , ").is_empty());
        assert_eq!(and_list(&["a", "b", "c"]), "a, b and c");
    }
}
