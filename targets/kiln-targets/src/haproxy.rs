//! HAProxy in front of a web service's replicas (`balancer haproxy`), for compose:
//! `compose/haproxy/<service>.cfg`, run by a `<service>-lb` service the sites proxy to.
//!
//! Decisions:
//! - The replicas are found through Docker's DNS (`resolvers docker`, 127.0.0.11), one slot
//!   per replica (`server-template`), re-resolved while HAProxy runs: a replica that is
//!   recreated at another address comes back by itself.
//! - Active health checks: the service's `health` path with the public Host and
//!   `X-Forwarded-Proto: https` (what Django's ALLOWED_HOSTS and SSL redirect expect behind
//!   nginx), every `interval`; `retries` failures take a replica out, two passes bring it
//!   back. Without a `health` path, a TCP check.
//! - HTTP passes through untouched: nginx already set X-Forwarded-For and -Proto, so HAProxy
//!   adds nothing (`option forwardfor` would add a second header).

use kiln_core::Artifact;
use kiln_core::model::{Model, pointer};

use crate::Writer;

/// The image the `<service>-lb` containers run.
pub(crate) const IMAGE: &str = "haproxy:2.8.5-alpine";

/// The network name of service `name`'s balancer.
pub(crate) fn lb_name(name: &str) -> String {
    format!("{name}-lb")
}

pub(crate) fn config(model: &Model, name: &str) -> Option<Artifact> {
    let s = &model.services[name];
    let port = s.port?;
    let svp = pointer(&["services", name]);
    let mut w = Writer::new();
    w.line(format!("# {}", crate::header_text(model)), &[]);
    w.line(
        format!(
            "# HAProxy in front of `{name}`'s replicas, with health checks (`balancer haproxy`)."
        ),
        &[&format!("{svp}/balancer")],
    );
    w.line("global", &[]);
    w.line("    log stdout format raw local0", &[]);
    w.line("    maxconn 4096", &[]);
    w.line("", &[]);
    w.line(
        "# Docker's DNS: the replicas' addresses, re-resolved while running.",
        &[],
    );
    w.line("resolvers docker", &[]);
    w.line("    nameserver dns 127.0.0.11:53", &[]);
    w.line("    resolve_retries 3", &[]);
    w.line("    timeout resolve 1s", &[]);
    w.line("    timeout retry 1s", &[]);
    w.line("    hold valid 10s", &[]);
    w.line("    accepted_payload_size 8192", &[]);
    w.line("", &[]);
    w.line("defaults", &[]);
    w.line("    mode http", &[]);
    w.line("    log global", &[]);
    w.line("    option httplog", &[]);
    w.line("    option dontlognull", &[]);
    w.line("    option log-health-checks", &[]);
    w.line("    timeout connect 5s", &[]);
    w.line("    timeout client 60s", &[]);
    w.line("    timeout server 60s", &[]);
    w.line("", &[]);
    w.line(format!("frontend {name}"), &[&svp]);
    w.line(format!("    bind :{port}"), &[&format!("{svp}/port")]);
    w.line(format!("    default_backend {name}"), &[&svp]);
    w.line("", &[]);
    w.line(format!("backend {name}"), &[&svp]);
    w.line("    balance roundrobin", &[]);
    let (inter, fall) = match &s.health {
        Some(h) => {
            let hp = format!("{svp}/health");
            w.line("    option httpchk", &[&hp]);
            let host = crate::compose::containers::public_host(model, name)
                .map(str::to_owned)
                .unwrap_or_else(|| name.to_owned());
            w.line(
                format!(
                    "    http-check send meth GET uri {} ver HTTP/1.1 hdr Host {host} hdr X-Forwarded-Proto https",
                    h.path
                ),
                &[&hp, "/sites"],
            );
            w.line("    http-check expect status 200-399", &[&hp]);
            (h.interval, h.retries.max(1))
        }
        None => {
            w.line(
                "    # no `health` path: a TCP check (the port answers)",
                &[],
            );
            (10, 3)
        }
    };
    w.line(
        format!("    default-server check inter {inter}s fall {fall} rise 2 resolvers docker init-addr none"),
        &[&format!("{svp}/health")],
    );
    w.line(
        format!(
            "    server-template {name} {} {}:{port}",
            s.replicas.max(1),
            model.container_host(name)
        ),
        &[&format!("{svp}/replicas"), &format!("{svp}/port")],
    );
    Some(w.finish(format!("compose/haproxy/{name}.cfg")))
}
