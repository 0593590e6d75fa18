//! Prometheus alerting rules (`alerts { … }`): `prometheus/alerts.yml`, one group per
//! environment, for what the spec runs. It is the same file whatever the targets (a rules
//! file is read by Prometheus, wherever it runs), so it is written once per environment.
//!
//! The rules read the metrics of the standard exporters, selected by a scrape `job` named
//! after what they watch, which the file's header lists: blackbox_exporter probing each
//! site (`job="<project>-blackbox"`, `instance` the site's URL), node_exporter
//! (`<project>-node`), postgres_exporter (`<project>-<postgres>`), redis_exporter
//! (`<project>-<redis>`), celery-exporter (`<project>-celery`), and each web service's own
//! metrics (`<project>-<service>`: django-prometheus for Django, the
//! prometheus-fastapi-instrumentator's `http_requests_total` otherwise).

use kiln_core::Artifact;
use kiln_core::model::{Alerts, Model, ServiceKind, Target, pointer};

use crate::yaml::Node;

/// PromQL string literal.
fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A regular expression matching `s` literally (PromQL's RE2, anchored).
fn re_literal(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn duration(secs: u64) -> String {
    if secs.is_multiple_of(86400) {
        format!("{}d", secs / 86400)
    } else if secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

struct Rules<'m> {
    model: &'m Model,
    items: Node,
}

impl Rules<'_> {
    #[allow(clippy::too_many_arguments)]
    fn rule(
        &mut self,
        name: &str,
        expr: String,
        wait: &str,
        severity: &str,
        summary: String,
        description: &str,
        from: &[&str],
    ) {
        let env = &self.model.environment;
        self.items.push(
            Node::map()
                .with("alert", Node::str(name))
                .with("expr", Node::str(expr))
                .with("for", Node::str(wait))
                .with(
                    "labels",
                    Node::map()
                        .with("severity", Node::str(severity))
                        .with("project", Node::str(&self.model.project.name))
                        .with("environment", Node::str(env)),
                )
                .with(
                    "annotations",
                    Node::map()
                        .with("summary", Node::str(summary))
                        .with("description", Node::str(description)),
                )
                .from(from),
        );
    }
}

/// A CamelCase alert name part from a spec name (`api.example.com` → `ApiExampleCom`).
fn camel(s: &str) -> String {
    s.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

pub(crate) fn emit(model: &Model) -> Option<Artifact> {
    let a: &Alerts = model.alerts.as_ref()?;
    let project = &model.project.name;
    let job = |what: &str| q(&format!("{project}-{what}"));
    let mut r = Rules {
        model,
        items: Node::seq(),
    };
    for (key, site) in &model.sites {
        let sp = pointer(&["sites", key]);
        let https = site.tls.mode != "off";
        let scheme = if https { "https" } else { "http" };
        let instance = format!(
            "{scheme}://{}(:[0-9]+)?(/.*)?",
            re_literal(site.server_names.first().unwrap_or(key))
        );
        let sel = format!("job={}, instance=~{}", job("blackbox"), q(&instance));
        r.rule(
            &format!("{}SiteDown", camel(key)),
            format!("probe_success{{{sel}}} == 0"),
            "2m",
            "critical",
            format!("{key} does not answer"),
            "blackbox_exporter's probe of the site has failed for 2 minutes.",
            &[&sp],
        );
        if https {
            r.rule(
                &format!("{}CertificateExpiry", camel(key)),
                format!(
                    "probe_ssl_earliest_cert_expiry{{{sel}}} - time() < {}",
                    a.cert_expiry
                ),
                "1h",
                "warning",
                format!(
                    "{key}'s certificate expires within {}",
                    duration(a.cert_expiry)
                ),
                "Renewal has not happened: check certbot's timer (or cert-manager) and the ACME challenge location.",
                &[&format!("{sp}/tls"), "/alerts/cert-expiry"],
            );
        }
    }
    for (name, s) in &model.services {
        if s.kind != ServiceKind::Web || s.port.is_none() {
            continue;
        }
        let svp = pointer(&["services", name]);
        let j = job(name);
        let (total, errors) = if s.env.contains_key("DJANGO_SETTINGS_MODULE") {
            (
                format!("django_http_responses_total_by_status_total{{job={j}}}"),
                format!("django_http_responses_total_by_status_total{{job={j}, status=~\"5..\"}}"),
            )
        } else {
            (
                format!("http_requests_total{{job={j}}}"),
                format!("http_requests_total{{job={j}, status=~\"5..|5xx\"}}"),
            )
        };
        r.rule(
            &format!("{}HighErrorRate", camel(name)),
            format!(
                "sum(rate({errors}[5m])) / sum(rate({total}[5m])) * 100 > {}",
                a.error_rate
            ),
            "5m",
            "critical",
            format!("{name}: more than {}% of responses are 5xx", a.error_rate),
            "Look at the app's errors (Sentry, its log) and at what was deployed last.",
            &[&svp, "/alerts/error-rate"],
        );
    }
    let hosts =
        model.targets.contains(&Target::Systemd) || model.targets.contains(&Target::Compose);
    if hosts {
        r.rule(
            "HostDiskSpaceLow",
            format!(
                "node_filesystem_avail_bytes{{job={}, fstype!~\"tmpfs|overlay|squashfs\"}} / node_filesystem_size_bytes{{job={}, fstype!~\"tmpfs|overlay|squashfs\"}} * 100 < {}",
                job("node"),
                job("node"),
                a.disk_free
            ),
            "10m",
            "warning",
            format!("a file system has less than {}% free", a.disk_free),
            "Logs, dumps and the database grow until writes fail: free space or grow the disk.",
            &["/alerts/disk-free"],
        );
    }
    if model.targets.contains(&Target::K8s) {
        let ns = q(&model.kubernetes.namespace);
        r.rule(
            "VolumeSpaceLow",
            format!(
                "kubelet_volume_stats_available_bytes{{namespace={ns}}} / kubelet_volume_stats_capacity_bytes{{namespace={ns}}} * 100 < {}",
                a.disk_free
            ),
            "10m",
            "warning",
            format!("a volume of {} has less than {}% free", model.kubernetes.namespace, a.disk_free),
            "The database's or the backups' claim is filling: grow it before writes fail.",
            &["/alerts/disk-free", "/kubernetes/namespace"],
        );
    }
    for (name, pg) in &model.postgres {
        let base = pointer(&["postgres", name]);
        let j = job(name);
        r.rule(
            &format!("{}PostgresDown", camel(name)),
            format!("pg_up{{job={j}}} == 0"),
            "1m",
            "critical",
            format!("PostgreSQL `{name}` is down"),
            "postgres_exporter cannot reach the server.",
            &[&base],
        );
        r.rule(
            &format!("{}PostgresConnections", camel(name)),
            format!(
                "sum(pg_stat_activity_count{{job={j}}}) / max(pg_settings_max_connections{{job={j}}}) * 100 > {}",
                a.connections
            ),
            "5m",
            "warning",
            format!("PostgreSQL `{name}` uses more than {}% of max_connections", a.connections),
            "New connections will soon be refused: look for leaks, or pool them (pgbouncer).",
            &[&base, "/alerts/connections"],
        );
        if pg.replicas > 0 {
            r.rule(
                &format!("{}ReplicationLag", camel(name)),
                format!(
                    "pg_replication_lag_seconds{{job={j}}} > {}",
                    a.replication_lag
                ),
                "5m",
                "warning",
                format!(
                    "a replica of `{name}` lags more than {}",
                    duration(a.replication_lag)
                ),
                "Reads from the replica are stale; a growing lag also holds WAL on the primary.",
                &[&format!("{base}/replicas"), "/alerts/replication-lag"],
            );
        }
    }
    for (name, redis) in &model.redis {
        let base = pointer(&["redis", name]);
        let j = job(name);
        r.rule(
            &format!("{}RedisDown", camel(name)),
            format!("redis_up{{job={j}}} == 0"),
            "1m",
            "critical",
            format!("Redis `{name}` is down"),
            "redis_exporter cannot reach the server.",
            &[&base],
        );
        if redis.maxmemory.is_some() {
            r.rule(
                &format!("{}RedisMemory", camel(name)),
                format!(
                    "redis_memory_used_bytes{{job={j}}} / redis_memory_max_bytes{{job={j}}} * 100 > 90 and redis_memory_max_bytes{{job={j}}} > 0"
                ),
                "5m",
                "warning",
                format!("Redis `{name}` is above 90% of its maxmemory"),
                "At maxmemory Redis evicts keys (a cache) or refuses writes (a broker).",
                &[&format!("{base}/maxmemory")],
            );
        }
    }
    if model
        .services
        .values()
        .any(|s| s.kind == ServiceKind::Worker && s.run.program == "celery-worker")
    {
        r.rule(
            "CeleryQueueBacklog",
            format!(
                "max by (queue_name) (celery_queue_length{{job={}}}) > {}",
                job("celery"),
                a.queue_length
            ),
            "10m",
            "warning",
            format!("a Celery queue holds more than {} tasks", a.queue_length),
            "The workers do not keep up: a stuck worker, a slow task, or too few workers.",
            &["/alerts/queue-length"],
        );
    }
    let root = Node::map().with(
        "groups",
        Node::seq().item(
            Node::map()
                .with(
                    "name",
                    Node::str(format!("{project}-{}", model.environment)),
                )
                .with("rules", r.items),
        ),
    );
    let header = vec![
        crate::header_text(model),
        "Prometheus alerting rules: add this file to `rule_files` (promtool check rules passes on it).".to_owned(),
        format!("The rules select scrape jobs by name: {project}-blackbox (blackbox_exporter probing each site's URL),"),
        format!("{project}-node (node_exporter), {project}-<postgres> (postgres_exporter), {project}-<redis> (redis_exporter),"),
        format!("{project}-celery (celery-exporter) and {project}-<service> (each web service's own /metrics)."),
    ];
    Some(crate::yaml::document(
        "prometheus/alerts.yml",
        &header,
        &root,
    ))
}
