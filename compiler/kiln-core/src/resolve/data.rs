//! PostgreSQL and Redis: databases, their replicas, TLS, backups and poolers; caches and their Sentinel groups.

use super::*;

impl Lower<'_> {
    pub(super) fn postgres_all(
        &mut self,
        root: &Node,
        secrets: &BTreeMap<String, Secret>,
    ) -> BTreeMap<String, Postgres> {
        let mut out = BTreeMap::new();
        for node in root.children_named("postgres") {
            let Some(key) = node.key() else { continue };
            let ptr = format!("/postgres/{}", pointer_segment(&key));
            self.record(&ptr, node);
            let version = self
                .uint(node, "version", &format!("{ptr}/version"))
                .unwrap_or(15);
            let pooler = node
                .child("pooler")
                .map(|p| self.pooler(p, &key, &format!("{ptr}/pooler")));
            let database = self.string(node, "database", &format!("{ptr}/database"));
            let user = self.string(node, "user", &format!("{ptr}/user"));
            for (what, v) in [("database", &database), ("user", &user)] {
                if v.is_none() {
                    self.diags.push(
                        Diagnostic::error(
                            "missing-value",
                            format!("postgres `{key}` has no {what}"),
                        )
                        .with_label(node.value_span(), format!("no `{what}`"))
                        .with_help(format!("add `{what} NAME` to the postgres block")),
                    );
                }
            }
            if let Some(at) = node.child("replicas")
                && self
                    .uint(node, "replicas", &format!("{ptr}/replicas"))
                    .unwrap_or(0)
                    > 0
                && node.child("replication-password").is_none()
            {
                self.diags.push(
                    Diagnostic::error(
                        "missing-value",
                        format!("postgres `{key}` has replicas but no `replication-password`"),
                    )
                    .with_label(at.value_span(), "streaming replicas log in to the primary")
                    .with_help("declare `secret REPLICATION_PASSWORD kind=password` and add `replication-password REPLICATION_PASSWORD`: the replicas' role gets it, the app's password stays the app's"),
                );
            }
            if let (Some(u), Some(at)) = (&user, node.child("user"))
                && u == "postgres"
            {
                self.diags.push(
                    Diagnostic::error(
                        "superuser-role",
                        format!("postgres `{key}`: the app cannot log in as `postgres`, PostgreSQL's bootstrap superuser"),
                    )
                    .with_label(at.value_span(), "the superuser")
                    .with_help("name the app's own role (`user app`): kiln creates it without superuser rights, owning the database, and keeps `postgres` for administration"),
                );
            }
            let pg = Postgres {
                url_scheme: self
                    .string(node, "url-scheme", &format!("{ptr}/url-scheme"))
                    .unwrap_or_else(|| "postgres".into()),
                url_query: self.string(node, "url-query", &format!("{ptr}/url-query")),
                image: self
                    .image(node, &format!("{ptr}/image"))
                    .unwrap_or_else(|| format!("postgres:{version}")),
                version,
                database: database.unwrap_or_default(),
                user: user.unwrap_or_default(),
                password: self.secret_ref(node, "password", &format!("{ptr}/password"), secrets),
                port: self
                    .uint(node, "port", &format!("{ptr}/port"))
                    .map_or(5432, |p| p as u16),
                host: self
                    .string(node, "host", &format!("{ptr}/host"))
                    .unwrap_or_else(|| "127.0.0.1".into()),
                replicas: self
                    .uint(node, "replicas", &format!("{ptr}/replicas"))
                    .unwrap_or(0),
                replication_user: self
                    .string(node, "replication-user", &format!("{ptr}/replication-user"))
                    .unwrap_or_else(|| "replicator".into()),
                replication_password: self.secret_ref(
                    node,
                    "replication-password",
                    &format!("{ptr}/replication-password"),
                    secrets,
                ),
                settings: self.free_map(node.child("settings"), &format!("{ptr}/settings")),
                pooler,
                resources: self.resources(node, &format!("{ptr}/resources")),
                storage: self
                    .string(node, "storage", &format!("{ptr}/storage"))
                    .and_then(|s| parse_size(&s)),
                extensions: self.list(node, "extensions", &format!("{ptr}/extensions")),
                backup: node
                    .child("backup")
                    .map(|b| self.backup(b, &format!("{ptr}/backup"))),
                tls: node
                    .child("tls")
                    .and_then(|t| self.pg_tls(t, &format!("{ptr}/tls"), secrets)),
            };
            out.insert(key, pg);
        }
        out
    }

    /// `postgres { tls cert= key= ca= }`: each a declared secret delivered as a file.
    pub(super) fn pg_tls(
        &mut self,
        node: &Node,
        ptr: &str,
        secrets: &BTreeMap<String, Secret>,
    ) -> Option<PgTls> {
        self.record(ptr, node);
        let get = |l: &mut Self, field: &str| -> Option<String> {
            let name = l.secret_ref(node, field, &format!("{ptr}/{field}"), secrets)?;
            if !secrets.get(&name).is_some_and(|s| s.as_file) {
                let span = node
                    .child(field)
                    .map_or_else(|| node.value_span(), Node::value_span);
                l.diags.push(
                    Diagnostic::error(
                        "secret-not-file",
                        format!("TLS `{field}` names secret `{name}`, which is not delivered as a file"),
                    )
                    .with_label(span, "PostgreSQL reads it from a file")
                    .with_help(format!("declare it `secret {name} kind=generic deliver=file`: the server gets a read-only file, never the PEM in its environment")),
                );
                return None;
            }
            Some(name)
        };
        let cert = get(self, "cert");
        let key = get(self, "key");
        let ca = node.child("ca").and_then(|_| get(self, "ca"));
        if cert.is_none() || key.is_none() {
            if node.child("cert").is_none() || node.child("key").is_none() {
                self.diags.push(
                    Diagnostic::error("missing-value", "PostgreSQL TLS needs both `cert` and `key`")
                        .with_label(node.name_span, "incomplete")
                        .with_help("write `tls cert=PG_TLS_CERT key=PG_TLS_KEY`, each a secret with `deliver=file`"),
                );
            }
            return None;
        }
        Some(PgTls {
            cert: cert?,
            key: key?,
            ca,
        })
    }

    pub(super) fn backup(&mut self, node: &Node, ptr: &str) -> Backup {
        self.record(ptr, node);
        let at = self.string(node, "at", &format!("{ptr}/at"));
        let (hour, minute) = match at.as_deref().map(parse_hh_mm) {
            None => (2, 0),
            Some(Some(hm)) => hm,
            Some(None) => {
                let span = node
                    .child("at")
                    .map_or_else(|| node.value_span(), Node::value_span);
                self.diags.push(
                    Diagnostic::error("type-mismatch", "`at` is not a time of day `HH:MM`")
                        .with_label(span, "expected `HH:MM` (UTC), such as \"02:00\"")
                        .with_help("write the hour (00–23) and the minute (00–59): `at=\"02:30\"`"),
                );
                (2, 0)
            }
        };
        Backup {
            every: self
                .string(node, "every", &format!("{ptr}/every"))
                .unwrap_or_else(|| "daily".into()),
            hour,
            minute,
            keep: self.uint(node, "keep", &format!("{ptr}/keep")),
            verify: self.boolean(node, "verify", &format!("{ptr}/verify"), true),
        }
    }

    /// `redis NAME { sentinel { … } }`: a majority quorum by default, and a group that can
    /// reach one (a quorum no larger than the group, a replica to promote).
    pub(super) fn sentinel(
        &mut self,
        node: &Node,
        redis: &str,
        replicas: u32,
        ptr: &str,
    ) -> Sentinel {
        self.record(ptr, node);
        let count = self
            .uint(node, "count", &format!("{ptr}/count"))
            .unwrap_or(3);
        let quorum = self
            .uint(node, "quorum", &format!("{ptr}/quorum"))
            .unwrap_or(count / 2 + 1);
        let at = |field: &str| {
            node.child(field)
                .map_or_else(|| node.value_span(), Node::value_span)
        };
        if count == 0 {
            self.diags.push(
                Diagnostic::error("invalid-value", "a sentinel group of 0 sentinels")
                    .with_label(at("count"), "no sentinel would watch the primary")
                    .with_help(
                        "write `count 3`: three sentinels, so a majority survives the loss of one",
                    ),
            );
        } else if quorum == 0 || quorum > count {
            self.diags.push(
                Diagnostic::error(
                    "invalid-value",
                    format!("a quorum of {quorum} in a group of {count} sentinel(s)"),
                )
                .with_label(at("quorum"), "the sentinels could never agree the primary is down")
                .with_help(format!("write a quorum from 1 to {count}; a majority (`quorum {}`) is the usual choice", count / 2 + 1)),
            );
        }
        if replicas == 0 {
            self.diags.push(
                Diagnostic::error(
                    "missing-value",
                    format!("redis `{redis}` has a sentinel group but no replicas"),
                )
                .with_label(node.name_span, "a sentinel fails over to a replica")
                .with_help("add `replicas 2` to the redis block: the sentinels promote one of them when the primary fails"),
            );
        }
        Sentinel {
            count,
            port: self
                .uint(node, "port", &format!("{ptr}/port"))
                .map_or(26379, |p| p as u16),
            master_name: self
                .string(node, "master-name", &format!("{ptr}/master-name"))
                .unwrap_or_else(|| redis.to_owned()),
            quorum,
            down_after: self
                .duration(node, "down-after", &format!("{ptr}/down-after"))
                .unwrap_or(5),
            failover_timeout: self
                .duration(node, "failover-timeout", &format!("{ptr}/failover-timeout"))
                .unwrap_or(60),
        }
    }

    pub(super) fn pooler(&mut self, node: &Node, db: &str, ptr: &str) -> Pooler {
        self.record(ptr, node);
        let u = |l: &mut Self, n: &str| l.uint(node, n, &format!("{ptr}/{n}"));
        let s = |l: &mut Self, n: &str| l.string(node, n, &format!("{ptr}/{n}"));
        Pooler {
            kind: node
                .args
                .first()
                .map(|v| v.value.to_text())
                .unwrap_or_else(|| "pgbouncer".into()),
            name: format!("{db}-pgbouncer"),
            image: self
                .image(node, &format!("{ptr}/image"))
                .unwrap_or_else(|| "edoburu/pgbouncer:v1.23.1-p3".into()),
            port: u(self, "port").map_or(6432, |p| p as u16),
            listen_addr: s(self, "listen-addr").unwrap_or_else(|| "127.0.0.1".into()),
            mode: s(self, "mode").unwrap_or_else(|| "transaction".into()),
            auth_type: s(self, "auth-type").unwrap_or_else(|| "scram-sha-256".into()),
            auth_file: s(self, "auth-file").unwrap_or_else(|| "/etc/pgbouncer/userlist.txt".into()),
            max_client_conn: u(self, "max-client-conn"),
            default_pool_size: u(self, "default-pool-size"),
            min_pool_size: u(self, "min-pool-size"),
            reserve_pool_size: u(self, "reserve-pool-size"),
            reserve_pool_timeout: u(self, "reserve-pool-timeout"),
            max_db_connections: u(self, "max-db-connections"),
            server_idle_timeout: u(self, "server-idle-timeout"),
            server_lifetime: u(self, "server-lifetime"),
            query_wait_timeout: u(self, "query-wait-timeout"),
            max_prepared_statements: u(self, "max-prepared-statements"),
            admin_users: self.list(node, "admin-users", &format!("{ptr}/admin-users")),
            stats_users: self.list(node, "stats-users", &format!("{ptr}/stats-users")),
            ignore_startup_parameters: self.list(
                node,
                "ignore-startup-parameters",
                &format!("{ptr}/ignore-startup-parameters"),
            ),
            client_tls_sslmode: s(self, "client-tls-sslmode"),
            server_tls_sslmode: s(self, "server-tls-sslmode"),
            resources: self.resources(node, &format!("{ptr}/resources")),
        }
    }

    pub(super) fn redis_all(
        &mut self,
        root: &Node,
        secrets: &BTreeMap<String, Secret>,
    ) -> BTreeMap<String, Redis> {
        let mut out = BTreeMap::new();
        for node in root.children_named("redis") {
            let Some(key) = node.key() else { continue };
            let ptr = format!("/redis/{}", pointer_segment(&key));
            self.record(&ptr, node);
            let version = self
                .uint(node, "version", &format!("{ptr}/version"))
                .unwrap_or(7);
            let maxmemory = match self
                .value(node, "maxmemory", &format!("{ptr}/maxmemory"))
                .map(|v| &v.value)
            {
                Some(Value::Int(i)) => u64::try_from(*i).ok(),
                Some(Value::Str(s)) => parse_size(s),
                _ => None,
            };
            let r = Redis {
                image: self
                    .image(node, &format!("{ptr}/image"))
                    .unwrap_or_else(|| format!("redis:{version}")),
                version,
                port: self
                    .uint(node, "port", &format!("{ptr}/port"))
                    .map_or(6379, |p| p as u16),
                host: self
                    .string(node, "host", &format!("{ptr}/host"))
                    .unwrap_or_else(|| "127.0.0.1".into()),
                maxmemory,
                // Empty: derived once the services are known (`derive_redis_roles`).
                role: self
                    .string(node, "role", &format!("{ptr}/role"))
                    .unwrap_or_default(),
                eviction: self.string(node, "eviction", &format!("{ptr}/eviction")),
                password: self.secret_ref(node, "password", &format!("{ptr}/password"), secrets),
                appendonly: self.boolean(node, "appendonly", &format!("{ptr}/appendonly"), false),
                settings: self.free_map(node.child("settings"), &format!("{ptr}/settings")),
                resources: self.resources(node, &format!("{ptr}/resources")),
                replicas: self
                    .uint(node, "replicas", &format!("{ptr}/replicas"))
                    .unwrap_or(0),
                sentinel: None,
            };
            let sentinel = node
                .child("sentinel")
                .map(|s| self.sentinel(s, &key, r.replicas, &format!("{ptr}/sentinel")));
            out.insert(key, Redis { sentinel, ..r });
        }
        out
    }
}
