//! `run.no-new-privileges`: a process can gain privileges (setuid binaries, file capabilities).

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::scan::{YamlNode, mentions, unit, yaml, yaml_only};
use kiln_policy_sdk::{Artifact, Finding, Input, Severity, json_pointer};
use serde_json::Value;

pub const RULE: RuleDocs = RuleDocs {
    id: "run.no-new-privileges",
    default_severity: Severity::Error,
    summary: "a process can gain privileges through setuid binaries or file capabilities",
    what: "Reads the rendered files: every compose service needs `security_opt: \
           [\"no-new-privileges:true\"]`, every Kubernetes container \
           `securityContext.allowPrivilegeEscalation: false`, and every systemd service \
           `NoNewPrivileges=yes` (or one of the sandboxing settings that imply it, such as \
           `SystemCallFilter=` or `RestrictSUIDSGID=`, with a non-root `User=`). In the spec, an \
           app service that adds `SYS_ADMIN` (or `ALL`) to its capabilities is reported: with \
           it, Kubernetes treats privilege escalation as allowed whatever the container says, \
           and no-new-privileges no longer contains the process. kiln's emitters always set \
           the flag, so the rendered-file part guards against regressions and hand edits.",
    why: "no_new_privs makes execve unable to grant more privileges than the caller has: a \
          setuid-root binary left in the image (su, mount, ping on older images, or one an \
          attacker finds) cannot be used to climb from the app user to root. It costs nothing \
          for a Python app, and it is what keeps a code execution bug at the app user's \
          privileges.",
    example: "service web {\n    cap-add \"SYS_ADMIN\"\n}",
    instead: "service web {\n    cap-add #null\n}",
    upstream: &[
        "CIS 5.26",
        "ODC rule 4",
        "PSS restricted",
        "KL privilege-escalation-container",
        "PO privilegeEscalationAllowed",
        "CKV_K8S_20",
        "SA NoNewPrivileges",
    ],
};

/// Settings that make systemd set no_new_privs for a unit that does not run as root
/// (systemd.exec(5), NoNewPrivileges=).
const IMPLYING: &[&str] = &[
    "SystemCallFilter",
    "SystemCallArchitectures",
    "RestrictAddressFamilies",
    "RestrictNamespaces",
    "PrivateDevices",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectKernelLogs",
    "ProtectClock",
    "MemoryDenyWriteExecute",
    "RestrictRealtime",
    "RestrictSUIDSGID",
    "DynamicUser",
    "LockPersonality",
];

fn yes(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "yes" | "true" | "1" | "on"
    )
}

fn escalating_caps(service: &Value) -> Vec<String> {
    service
        .get("cap-add")
        .and_then(Value::as_array)
        .map(|caps| {
            caps.iter()
                .filter_map(Value::as_str)
                .filter(|c| {
                    let c = c.to_ascii_uppercase();
                    matches!(c.trim_start_matches("CAP_"), "SYS_ADMIN" | "ALL")
                })
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

pub fn check(input: &Input) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut flagged: Vec<&str> = Vec::new();
    for (name, service) in input.services() {
        let caps = escalating_caps(service);
        if caps.is_empty() {
            continue;
        }
        flagged.push(name);
        out.push(
            Finding::new(
                RULE.id,
                format!(
                    "service `{name}` adds {}, which lets it regain privileges: no-new-privileges no longer holds",
                    caps.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(" and ")
                ),
            )
            .at(json_pointer(["services", name, "cap-add"]))
            .help("remove it from `cap-add`; if the process needs one specific power, add only that capability"),
        );
    }
    let project = input
        .pointer("/project/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    for a in &input.artifacts {
        let path = a.path.as_str();
        if path.ends_with(".service") {
            out.extend(systemd(a, project, &flagged));
        } else if path.ends_with(".yaml") || path.ends_with(".yml") {
            // A compose file (`services` at the top): only `services.*.security_opt` is read.
            // Otherwise Kubernetes, whose findings need `containers` or `initContainers`.
            let text = a.text.as_str();
            let services = mentions(text, "services")
                .then(|| yaml_only(text, &[&["services", "*", "security_opt"]]))
                .filter(|doc| doc.root().get("services").is_some());
            if let Some(doc) = services {
                out.extend(compose(a, doc.root(), &flagged));
            } else if mentions(text, "ontainers") {
                out.extend(kubernetes(a, yaml(text).root(), &flagged));
            }
        }
    }
    out
}

fn compose(a: &Artifact, doc: YamlNode, flagged: &[&str]) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(services) = doc.get("services") else {
        return out;
    };
    for service in services.entries() {
        let name = service.key().unwrap_or("");
        if flagged.contains(&name) {
            continue;
        }
        let set = service.items("security_opt").any(|o| {
            matches!(
                o.text(),
                "no-new-privileges" | "no-new-privileges:true" | "no-new-privileges=true"
            )
        });
        if !set {
            out.push(
                Finding::new(
                    RULE.id,
                    format!("compose service `{name}` lacks `security_opt: [\"no-new-privileges:true\"]`"),
                )
                .at_artifact(a.path.clone(), service.line())
                .help("kiln's compose emitter sets it on every service: regenerate the file with `kiln compile` instead of editing it"),
            );
        }
    }
    out
}

fn kubernetes(a: &Artifact, doc: YamlNode, flagged: &[&str]) -> Vec<Finding> {
    let mut out = Vec::new();
    let workload = doc
        .get("metadata")
        .and_then(|m| m.get("name"))
        .map(YamlNode::text)
        .unwrap_or("");
    if flagged.contains(&workload) {
        return out;
    }
    for node in doc.descendants() {
        if !matches!(node.key(), Some("containers" | "initContainers")) {
            continue;
        }
        for container in node.list() {
            let ape = container
                .get("securityContext")
                .and_then(|s| s.get("allowPrivilegeEscalation"));
            if ape.is_some_and(|v| v.text().eq_ignore_ascii_case("false")) {
                continue;
            }
            let name = container.get("name").map(YamlNode::text).unwrap_or("?");
            out.push(
                Finding::new(
                    RULE.id,
                    format!("container `{name}` in {} does not set `allowPrivilegeEscalation: false`", a.path),
                )
                .at_artifact(a.path.clone(), ape.map_or(container.line(), |v| v.line()))
                .help("set `securityContext: { allowPrivilegeEscalation: false }` on the container; kiln's k8s emitter does: regenerate the file"),
            );
        }
    }
    out
}

fn systemd(a: &Artifact, project: &str, flagged: &[&str]) -> Vec<Finding> {
    let stem = a
        .path
        .rsplit('/')
        .next()
        .unwrap_or("")
        .trim_end_matches(".service");
    let service = stem
        .strip_prefix(&format!("{project}-"))
        .unwrap_or(stem)
        .trim_end_matches('@');
    if flagged.contains(&service) {
        return Vec::new();
    }
    let u = unit(&a.text);
    let Some(section) = u.section("Service") else {
        return Vec::new();
    };
    let explicit = u.get("Service", "NoNewPrivileges");
    if explicit.is_some_and(|e| yes(&e.value)) {
        return Vec::new();
    }
    let user = u
        .get("Service", "User")
        .map(|e| e.value.trim().to_owned())
        .unwrap_or_default();
    let unprivileged = !user.is_empty() && user != "root" && user != "0";
    let implied = IMPLYING.iter().any(|k| {
        u.get("Service", k).is_some_and(|e| {
            let v = e.value.trim();
            !v.is_empty()
                && !matches!(
                    v.to_ascii_lowercase().as_str(),
                    "no" | "false" | "0" | "off"
                )
        })
    });
    let dynamic = u
        .get("Service", "DynamicUser")
        .is_some_and(|e| yes(&e.value));
    if (implied && unprivileged) || dynamic {
        return Vec::new();
    }
    vec![
        Finding::new(RULE.id, format!("{} does not set `NoNewPrivileges=yes`", a.path))
            .at_artifact(a.path.clone(), explicit.map_or(section.line, |e| e.line))
            .help("add `NoNewPrivileges=yes` to `[Service]`; kiln's systemd emitter does: regenerate the file"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_policy_sdk::test_support::{input, parse_input};
    use serde_json::json;

    fn clean() -> Input {
        parse_input(include_str!(
            "../../../testdata/inputs/clean-production.json"
        ))
    }

    fn edited(path: &str, from: &str, to: &str) -> Vec<(u32, String)> {
        let mut i = clean();
        let a = i.artifacts.iter_mut().find(|a| a.path == path).unwrap();
        assert!(a.text.contains(from), "{path} has no `{from}`");
        a.text = a.text.replacen(from, to, 1);
        check(&i)
            .into_iter()
            .map(|f| (f.artifact.map_or(0, |a| a.line), f.message))
            .collect()
    }

    #[test]
    fn clean_output_passes() {
        assert!(check(&clean()).is_empty());
    }

    #[test]
    fn compose_without_the_flag() {
        let f = edited(
            "compose/compose.yaml",
            "    security_opt:\n      - no-new-privileges:true\n",
            "",
        );
        assert_eq!(f.len(), 1);
        assert!(f[0].1.starts_with("compose service `beat` lacks"), "{f:?}");
        let input = clean();
        let text = &input.artifact("compose/compose.yaml").unwrap().text;
        assert_eq!(
            text.lines().nth(f[0].0 as usize - 1).unwrap().trim(),
            "beat:"
        );
    }

    #[test]
    fn kubernetes_without_the_flag() {
        let f = edited(
            "k8s/deployment-web.yaml",
            "allowPrivilegeEscalation: false",
            "allowPrivilegeEscalation: true",
        );
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].1,
            "container `web` in k8s/deployment-web.yaml does not set `allowPrivilegeEscalation: false`"
        );
        let f = edited(
            "k8s/statefulset-cache.yaml",
            "            allowPrivilegeEscalation: false\n",
            "",
        );
        assert_eq!(f.len(), 1);
    }

    #[test]
    fn systemd_explicit_or_implied() {
        // The sandbox settings imply it for a non-root user.
        assert!(
            edited(
                "systemd/shop-web@.service",
                "NoNewPrivileges=yes",
                "NoNewPrivileges=no"
            )
            .is_empty()
        );
        let bare = "[Unit]\nDescription=x\n\n[Service]\nUser=shop\nExecStart=/bin/true\n";
        let mut i = clean();
        i.artifacts.retain(|a| !a.path.ends_with(".service"));
        i.artifacts.push(Artifact {
            target: "systemd".into(),
            path: "systemd/shop-web.service".into(),
            text: bare.into(),
        });
        let f = check(&i);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].artifact.as_ref().unwrap().line, 4);
        i.artifacts.last_mut().unwrap().text =
            format!("{bare}RestrictSUIDSGID=yes\n").replace("User=shop", "User=root");
        assert_eq!(check(&i).len(), 1);
    }

    #[test]
    fn sys_admin_in_the_spec() {
        let mut i = clean();
        i.spec["services"]["web"]["cap-add"] = json!(["NET_BIND_SERVICE", "CAP_SYS_ADMIN"]);
        // The rendered files still say no-new-privileges; the spec finding is the one.
        let f = check(&i);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].path.as_deref(), Some("/services/web/cap-add"));
        let spec = json!({"services": {"w": {"cap-add": ["ALL"]}}});
        assert_eq!(check(&input(spec)).len(), 1);
    }
}
