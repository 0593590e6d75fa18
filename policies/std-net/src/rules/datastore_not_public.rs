//! `net.datastore-not-public`: a database, pooler, cache or broker is reachable from outside.

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::scan::{YamlNode, mentions_any, yaml};
use kiln_policy_sdk::{Artifact, Finding, Input, Severity, json_pointer};
use serde_json::Value;

use crate::util::{
    DATASTORE_PORTS, Publish, compose_publishes, datastores, has_target, is_loopback, is_public,
};

pub const RULE: RuleDocs = RuleDocs {
    id: "net.datastore-not-public",
    default_severity: Severity::Error,
    summary: "a database, pooler, cache or broker listens on a public address or is published",
    what: "PostgreSQL (5432), pgbouncer (6432), Redis (6379), AMQP (5672) and Flower (5555) must \
           never be reachable from outside. On hosts (the systemd target): pgbouncer's \
           `listen-addr`, PostgreSQL's `listen_addresses` and Redis's `bind` in `settings` \
           must be loopback or private addresses, never `*`, `0.0.0.0`, `::` or a public IP. \
           In the rendered compose files, a datastore's `ports:` entry must bind \
           `127.0.0.1:` or `[::1]:` (the short form `\"6379:6379\"` binds every interface). In \
           the rendered Kubernetes files, a datastore's Service must not be `NodePort` or \
           `LoadBalancer`, and its containers must not use `hostPort`.",
    why: "Internet-wide scanners find an exposed database within minutes. The official Redis \
          image compiles protected mode off, so a published Redis without a password is an \
          open Redis (keys read, `CONFIG SET` to write files); PostgreSQL and pgbouncer turn \
          every leaked or weak password into a remote login. Docker's published ports also \
          bypass ufw, so the host firewall does not help.",
    example: "redis cache {\n    settings {\n        bind \"0.0.0.0\"\n    }\n}",
    instead: "redis cache {\n    settings {\n        bind \"127.0.0.1 -::1\"\n    }\n}",
    upstream: &[
        "DD port-publishing",
        "CIS 5.14",
        "ODC rule 5a",
        "RD bind",
        "CE broker",
    ],
};

fn public_of(list: &str, separators: &[char]) -> Vec<String> {
    list.split(separators)
        .map(|a| a.trim().trim_matches('\''))
        .filter(|a| !a.is_empty() && is_public(a))
        .map(str::to_owned)
        .collect()
}

pub fn check(input: &Input) -> Vec<Finding> {
    check_with(input, &compose_publishes(&input.artifacts))
}

/// `check`, with the compose files' published ports already read (`compose_publishes`).
pub fn check_with(input: &Input, publishes: &[(&Artifact, Publish)]) -> Vec<Finding> {
    let mut out = Vec::new();
    if has_target(input, "systemd") {
        for (name, pg) in input.entries("/postgres") {
            let pooler = pg.get("pooler").filter(|p| p.is_object());
            let addr = pooler
                .and_then(|p| p.get("listen-addr"))
                .and_then(Value::as_str);
            if let Some(addr) = addr.filter(|addr| !public_of(addr, &[',']).is_empty()) {
                out.push(
                    Finding::new(RULE.id, format!("the pgbouncer of `{name}` listens on `{addr}`, a public address"))
                        .at(json_pointer(["postgres", name, "pooler", "listen-addr"]))
                        .help("listen on loopback (`listen-addr \"127.0.0.1\"`, the default) or a private address"),
                );
            }
            if let Some(addrs) = pg
                .pointer("/settings/listen_addresses")
                .and_then(Value::as_str)
            {
                let public = public_of(addrs, &[',']);
                if !public.is_empty() {
                    out.push(
                        Finding::new(RULE.id, format!("postgres `{name}` listens on {}", quoted(&public)))
                            .at(json_pointer(["postgres", name, "settings", "listen_addresses"]))
                            .help("set `listen_addresses \"localhost\"` (or a private address the apps use)"),
                    );
                }
            }
        }
        for (name, r) in input.entries("/redis") {
            if let Some(bind) = r.pointer("/settings/bind").and_then(Value::as_str) {
                let public = public_of(bind, &[' ', '\t']);
                if !public.is_empty() {
                    out.push(
                        Finding::new(RULE.id, format!("redis `{name}` binds {}", quoted(&public)))
                            .at(json_pointer(["redis", name, "settings", "bind"]))
                            .help("bind loopback (`bind \"127.0.0.1 -::1\"`, Redis's default) or a private address"),
                    );
                }
            }
        }
    }

    let stores = datastores(input);
    let store_name = |service: &str| stores.iter().any(|(n, _)| n == service);
    let store_port = |port: Option<u16>| {
        port.and_then(|p| {
            stores
                .iter()
                .find(|(_, sp)| *sp == p)
                .map(|(n, _)| n.clone())
                .or_else(|| {
                    DATASTORE_PORTS
                        .iter()
                        .find(|(dp, _)| *dp == p)
                        .map(|(_, n)| (*n).to_owned())
                })
        })
    };
    for (a, p) in publishes {
        let datastore = store_name(&p.service) || store_port(p.container_port).is_some();
        if !datastore || is_loopback(&p.host_ip) {
            continue;
        }
        let port = p.container_port.map_or("?".to_owned(), |c| c.to_string());
        let on = if p.host_ip.is_empty() {
            "every interface".to_owned()
        } else {
            format!("`{}`", p.host_ip)
        };
        out.push(
            Finding::new(
                RULE.id,
                format!("compose publishes port {port} of `{}` on {on}", p.service),
            )
            .at_artifact(a.path.clone(), p.line)
            .help("do not publish datastores; if a tool on the host needs it, bind loopback: `\"127.0.0.1:6379:6379\"`"),
        );
    }
    for a in &input.artifacts {
        if !(a.target == "k8s" && (a.path.ends_with(".yaml") || a.path.ends_with(".yml"))) {
            continue;
        }
        // A finding needs a Service of type NodePort or LoadBalancer, or a `hostPort`.
        if !mentions_any(&a.text, &["NodePort", "LoadBalancer", "hostPort"]) {
            continue;
        }
        let doc = yaml(&a.text);
        let doc = doc.root();
        let kind = doc.get("kind").map(YamlNode::text).unwrap_or("");
        let name = doc
            .get("metadata")
            .and_then(|m| m.get("name"))
            .map(YamlNode::text)
            .unwrap_or("");
        if kind == "Service" {
            let Some(spec) = doc.get("spec") else {
                continue;
            };
            let Some(ty) = spec.get("type") else { continue };
            if !matches!(ty.text(), "NodePort" | "LoadBalancer") {
                continue;
            }
            let ports: Vec<u16> = spec
                .items("ports")
                .filter_map(|p| p.get("port").and_then(|v| v.text().parse().ok()))
                .collect();
            if store_name(name) || ports.iter().any(|p| store_port(Some(*p)).is_some()) {
                out.push(
                    Finding::new(RULE.id, format!("Kubernetes Service `{name}` of a datastore is `{}`, reachable from outside the cluster", ty.text()))
                        .at_artifact(a.path.clone(), ty.line())
                        .help("use a ClusterIP (or headless) Service; reach it with `kubectl port-forward` when needed"),
                );
            }
            continue;
        }
        for node in doc.descendants() {
            if node.key() != Some("hostPort") {
                continue;
            }
            let port = node.text().parse::<u16>().ok();
            if store_name(name) || store_port(port).is_some() {
                out.push(
                    Finding::new(RULE.id, format!("a container of `{name}` uses hostPort {}, which publishes a datastore on the node", node.text()))
                        .at_artifact(a.path.clone(), node.line())
                        .help("remove `hostPort`; other pods reach the datastore through its Service"),
                );
            }
        }
    }
    out
}

fn quoted(list: &[String]) -> String {
    list.iter()
        .map(|a| format!("`{a}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_policy_sdk::Artifact;
    use kiln_policy_sdk::test_support::{input, parse_input};
    use serde_json::json;

    fn clean() -> Input {
        parse_input(include_str!(
            "../../../testdata/inputs/clean-production.json"
        ))
    }

    #[test]
    fn host_listeners() {
        let spec = json!({
            "targets": ["systemd"],
            "postgres": {"db": {"settings": {"listen_addresses": "localhost, 10.0.0.5"}, "pooler": {"name": "db-pgbouncer", "listen-addr": "0.0.0.0"}},
                         "other": {"settings": {"listen_addresses": "'*'"}, "pooler": null}},
            "redis": {"cache": {"settings": {"bind": "127.0.0.1 -::1"}}, "open": {"settings": {"bind": "* -::*"}}},
        });
        let paths: Vec<String> = check(&input(spec.clone()))
            .into_iter()
            .map(|f| f.path.unwrap())
            .collect();
        assert_eq!(
            paths,
            [
                "/postgres/db/pooler/listen-addr",
                "/postgres/other/settings/listen_addresses",
                "/redis/open/settings/bind"
            ]
        );
        let mut containers = spec;
        containers["targets"] = json!(["compose", "k8s"]);
        assert!(check(&input(containers)).is_empty());
    }

    #[test]
    fn compose_publishes() {
        let mut i = clean();
        assert!(check(&i).is_empty());
        let a = i
            .artifacts
            .iter_mut()
            .find(|a| a.path == "compose/compose.yaml")
            .unwrap();
        a.text = a.text.replace(
            "  cache:\n    image:",
            "  cache:\n    ports:\n      - \"6379:6379\"\n      - \"127.0.0.1:6380:6379\"\n    image:",
        );
        let f = check(&i);
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].message,
            "compose publishes port 6379 of `cache` on every interface"
        );
        let line = f[0].artifact.as_ref().unwrap().line as usize;
        assert_eq!(
            i.artifact("compose/compose.yaml")
                .unwrap()
                .text
                .lines()
                .nth(line - 1)
                .unwrap()
                .trim(),
            "- \"6379:6379\""
        );
    }

    #[test]
    fn kubernetes_exposure() {
        let mut i = clean();
        i.artifacts.push(Artifact {
            target: "k8s".into(),
            path: "k8s/service-db.yaml".into(),
            text: "kind: Service\nmetadata:\n  name: db\nspec:\n  type: LoadBalancer\n  ports:\n    - port: 5432\n".into(),
        });
        i.artifacts.push(Artifact {
            target: "k8s".into(),
            path: "k8s/statefulset-cache.yaml".into(),
            text: "kind: StatefulSet\nmetadata:\n  name: cache\nspec:\n  template:\n    spec:\n      containers:\n        - name: redis\n          ports:\n            - containerPort: 6379\n              hostPort: 6379\n".into(),
        });
        let lines: Vec<u32> = check(&i)
            .into_iter()
            .map(|f| f.artifact.unwrap().line)
            .collect();
        assert_eq!(lines, [5, 11]);
    }
}
