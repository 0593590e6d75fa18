//! `run.non-root`: a process of the app runs as root.

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::{Finding, Input, Severity, json_pointer};
use serde_json::Value;

pub const RULE: RuleDocs = RuleDocs {
    id: "run.non-root",
    default_severity: Severity::Error,
    summary: "a process of the app runs as root",
    what: "Checks the user every app service runs as, once for every target: the service's \
           `user` (compose `user:`, Kubernetes `runAsUser` with `runAsNonRoot: true`) must be a \
           numeric `uid:gid` with a uid other than 0 (a group of 0 is a warning, a uid below \
           10000 is info, as kube-score suggests, since it may collide with a host user); with \
           the systemd target, `host { user … uid … }` (`User=`) must not be `root`, uid 0 or \
           `nobody`. PostgreSQL, Redis, pgbouncer and nginx run from their official images, \
           which drop privileges themselves, and are not checked.",
    why: "A process running as root turns any code execution bug (a deserialisation flaw, a \
          template injection, a malicious dependency) into control of the container and, \
          through the kernel or a mounted socket, often of the host. `nobody` is shared by \
          unrelated daemons, so they can signal and read each other's files. Kubernetes can \
          only enforce `runAsNonRoot` for numeric users.",
    example: "service web {\n    user \"0:0\"\n}",
    instead: "service web {\n    user \"10001:10001\"\n}",
    upstream: &[
        "PSS restricted",
        "KL run-as-non-root",
        "KS container-security-context-user-group-id",
        "CKV_K8S_23",
        "CKV_K8S_40",
        "PO runAsRootAllowed",
        "SA User",
        "CIS 4.1",
    ],
};

fn is_root(part: &str) -> bool {
    part == "0" || part.eq_ignore_ascii_case("root")
}

pub fn check(input: &Input) -> Vec<Finding> {
    let mut out = Vec::new();
    for (name, service) in input.services() {
        let user = service.get("user").and_then(Value::as_str).unwrap_or("");
        let at = json_pointer(["services", name, "user"]);
        let (uid, gid) = match user.split_once(':') {
            Some((u, g)) => (u.trim(), Some(g.trim())),
            None => (user.trim(), None),
        };
        if uid.is_empty() || is_root(uid) {
            out.push(
                Finding::new(RULE.id, format!("service `{name}` runs as root"))
                    .at(at)
                    .help("run it as an unprivileged user: `user \"10001:10001\"` (or drop `user` to use the host block's uid)"),
            );
            continue;
        }
        let Ok(number) = uid.parse::<u32>() else {
            out.push(
                Finding::new(
                    RULE.id,
                    format!("service `{name}` runs as user `{uid}`, which is not a numeric uid"),
                )
                .at(at)
                .help("write a numeric `uid:gid` (`user \"10001:10001\"`): Kubernetes' runAsNonRoot cannot check a user name"),
            );
            continue;
        };
        if gid.is_some_and(is_root) {
            out.push(
                Finding::new(
                    RULE.id,
                    format!("service `{name}` runs with group 0 (root)"),
                )
                .at(at)
                .help("give it its own group: `user \"10001:10001\"`")
                .severity(Severity::Warn),
            );
        } else if number < 10_000 {
            out.push(
                Finding::new(
                    RULE.id,
                    format!(
                        "service `{name}` runs as uid {number}, which may be a user of the host"
                    ),
                )
                .at(at)
                .help("use a uid of 10000 or more (kiln's default is 10001)")
                .severity(Severity::Info),
            );
        }
    }
    let systemd = input
        .pointer("/targets")
        .and_then(Value::as_array)
        .is_some_and(|t| t.iter().any(|t| t == "systemd"));
    if systemd {
        let user = input
            .pointer("/host/user")
            .and_then(Value::as_str)
            .unwrap_or("");
        if is_root(user) || user == "nobody" {
            out.push(
                Finding::new(RULE.id, format!("the systemd units run as `{user}` (`User={user}`)"))
                    .at("/host/user")
                    .help("give the app its own system user: `host { user \"app\" }` (kiln's default is the project name)"),
            );
        } else if input.pointer("/host/uid").and_then(Value::as_u64) == Some(0) {
            out.push(
                Finding::new(
                    RULE.id,
                    "the host user has uid 0, so the systemd units run as root",
                )
                .at("/host/uid")
                .help("use an unprivileged uid: `host { uid 10001 }`"),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_policy_sdk::test_support::input;
    use serde_json::json;

    fn run(user: &str) -> Vec<(String, Option<Severity>)> {
        let spec = json!({"services": {"web": {"user": user}}, "targets": ["compose"]});
        check(&input(spec))
            .into_iter()
            .map(|f| (f.path.unwrap(), f.severity))
            .collect()
    }

    #[test]
    fn users() {
        assert!(run("10001:10001").is_empty());
        assert!(run("10000").is_empty());
        for root in ["0", "0:0", "root", "root:root", ""] {
            assert_eq!(
                run(root),
                [("/services/web/user".to_owned(), None)],
                "{root}"
            );
        }
        assert_eq!(run("app:app")[0].1, None);
        assert_eq!(run("10001:0")[0].1, Some(Severity::Warn));
        assert_eq!(run("9999:9999")[0].1, Some(Severity::Info));
    }

    #[test]
    fn host_user_with_systemd() {
        for (user, uid, path) in [
            ("root", 0, "/host/user"),
            ("nobody", 65534, "/host/user"),
            ("app", 0, "/host/uid"),
        ] {
            let spec =
                json!({"services": {}, "host": {"user": user, "uid": uid}, "targets": ["systemd"]});
            let f = check(&input(spec));
            assert_eq!(f.len(), 1);
            assert_eq!(f[0].path.as_deref(), Some(path));
        }
        let spec = json!({"services": {}, "host": {"user": "root", "uid": 0}, "targets": ["k8s"]});
        assert!(check(&input(spec)).is_empty());
    }
}
