//! Data services: PostgreSQL (with its backups) and Redis as StatefulSets, and pgbouncer.

use super::*;

impl Cx<'_> {
    pub(super) fn postgres(&mut self, name: &str) {
        let model = self.model;
        let pg = &model.postgres[name];
        let base = pointer(&["postgres", name]);
        let pp = |f: &str| format!("{base}/{f}");
        if pg.replicas > 0 {
            self.unsupported(pp("replicas"), format!("{} read replica(s) of `{name}`: a replica's failover and re-cloning need a controller, which plain manifests are not; kiln emits the primary (with the replication role) and leaves the replicas to an operator (CloudNativePG …)", pg.replicas));
        }
        for key in file_settings(pg) {
            self.unsupported(
                pp(&format!("settings/{key}")),
                format!("`{key}` names a file inside the PostgreSQL container, which this StatefulSet does not provide: mount it from a Secret"),
            );
        }
        let mut args = Node::seq().item(Node::str("postgres"));
        // A secret volume's files are root-owned, 0440: PostgreSQL accepts such a key.
        let tls_key = pg
            .tls
            .as_ref()
            .map(|t| format!("{SECRET_FILES_DIR}/{}", t.key))
            .unwrap_or_default();
        let mut pg_args = postgres_args(name, pg);
        pg_args.extend(crate::postgres::tls_args(name, pg, &tls_key));
        for (arg, ptr) in pg_args {
            args.push(Node::str("-c").from(&[&ptr]));
            args.push(Node::str(k8s_escape(&arg)).from(&[&ptr]));
        }
        let mut env = Node::seq()
            .item(
                Node::map()
                    .with("name", Node::str("POSTGRES_DB"))
                    .with("value", Node::str(k8s_escape(&pg.database)))
                    .from(&[&pp("database")]),
            )
            .item(
                Node::map()
                    .with("name", Node::str("POSTGRES_USER"))
                    .with("value", Node::str("postgres"))
                    .comment(format!(
                        "the superuser, for administration over the socket only: the app logs in as `{}`, made by ConfigMap {}",
                        pg.user,
                        init_name(name)
                    )),
            );
        match &pg.password {
            Some(pw) if model.secrets.get(pw).is_some_and(|x| x.as_file) => {
                env.push(
                    Node::map()
                        .with("name", Node::str("POSTGRES_PASSWORD_FILE"))
                        .with("value", Node::str(format!("{SECRET_FILES_DIR}/{pw}")))
                        .from(&[&pp("password")]),
                );
            }
            Some(pw) => env.push(self.secret_ref("POSTGRES_PASSWORD", pw, false, &[&pp("password")])),
            None => self.unsupported(base.clone(), format!("postgres `{name}` has no password: the official image refuses to start without POSTGRES_PASSWORD")),
        }
        if let Some(serde_json::Value::String(m)) = pg.settings.get("password_encryption")
            && matches!(m.as_str(), "scram-sha-256" | "md5")
        {
            env.push(
                Node::map()
                    .with("name", Node::str("POSTGRES_HOST_AUTH_METHOD"))
                    .with("value", Node::str(m))
                    .from(&[&pp("settings/password_encryption")]),
            );
        }
        if let (true, Some(rpw)) = (pg.replicas > 0, &pg.replication_password) {
            env.push(self.secret_ref(
                "KILN_REPLICATION_PASSWORD",
                rpw,
                false,
                &[&pp("replication-password")],
            ));
        }
        if pg.version < 18 {
            // From 18 on, the image's PGDATA is a folder inside the volume already.
            env.push(
                Node::map()
                    .with("name", Node::str("PGDATA"))
                    .with("value", Node::str("/var/lib/postgresql/data/pgdata"))
                    .from(&[&pp("version")])
                    .comment(
                        "a folder inside the volume: its root holds lost+found, which initdb refuses",
                    ),
            );
        }
        let isready = Node::strs([
            "pg_isready".to_owned(),
            "-h".into(),
            "127.0.0.1".into(),
            "-p".into(),
            pg.port.to_string(),
            "-U".into(),
            pg.user.clone(),
            "-d".into(),
            pg.database.clone(),
        ]);
        let c = Node::map()
            .with("name", Node::str("postgres"))
            .with("image", Node::str(&pg.image).from(&[&pp("image")]))
            .with("imagePullPolicy", self.pull_policy(&pg.image))
            .with("args", args)
            .with(
                "ports",
                Node::seq().item(
                    Node::map()
                        .with("name", Node::str("postgres"))
                        .with("containerPort", Node::int(pg.port))
                        .with("protocol", Node::str("TCP"))
                        .from(&[&pp("port")]),
                ),
            )
            .with("env", env)
            .with(
                "readinessProbe",
                Node::map()
                    .with("exec", Node::map().with("command", isready))
                    .with("initialDelaySeconds", Node::int(5))
                    .with("periodSeconds", Node::int(10))
                    .with("timeoutSeconds", Node::int(5)),
            )
            .with(
                "livenessProbe",
                Node::map()
                    .with("tcpSocket", Node::map().with("port", Node::str("postgres")))
                    .with("initialDelaySeconds", Node::int(30))
                    .with("periodSeconds", Node::int(30))
                    .with("timeoutSeconds", Node::int(5))
                    .with("failureThreshold", Node::int(6)),
            );
        let mut c = c;
        if let Some(r) = resources(&pp("resources"), &pg.resources) {
            c.set("resources", r);
        }
        let mut mounts = Node::seq()
            .item(
                Node::map()
                    .with("name", Node::str("data"))
                    .with("mountPath", Node::str(postgres_data_mount(pg)))
                    .from(&[&pp("version")]),
            )
            .item(
                Node::map()
                    .with("name", Node::str("run"))
                    .with("mountPath", Node::str("/var/run/postgresql")),
            )
            .item(
                Node::map()
                    .with("name", Node::str("tmp"))
                    .with("mountPath", Node::str("/tmp")),
            )
            .item(
                Node::map()
                    .with("name", Node::str("shm"))
                    .with("mountPath", Node::str("/dev/shm")),
            )
            .item(
                Node::map()
                    .with("name", Node::str("init"))
                    .with("mountPath", Node::str("/docker-entrypoint-initdb.d"))
                    .with("readOnly", Node::bool(true))
                    .from(&[&pp("user"), &pp("database"), &pp("extensions")]),
            );
        let file_keys = crate::postgres::file_secrets(model, pg);
        if !file_keys.is_empty() {
            mounts.push(
                Node::map()
                    .with("name", Node::str("secrets"))
                    .with("mountPath", Node::str(SECRET_FILES_DIR))
                    .with("readOnly", Node::bool(true))
                    .from(&[&pp("password")]),
            );
        }
        c.set("volumeMounts", mounts);
        c.set(
            "securityContext",
            Self::container_security(true, &[], &[], &[]),
        );
        let mut volumes = Node::seq()
            .item(
                Node::map()
                    .with("name", Node::str("run"))
                    .with("emptyDir", Node::map()),
            )
            .item(
                Node::map()
                    .with("name", Node::str("tmp"))
                    .with("emptyDir", Node::map()),
            )
            .item(
                Node::map()
                    .with("name", Node::str("shm"))
                    .with(
                        "emptyDir",
                        Node::map()
                            .with("medium", Node::str("Memory"))
                            .with("sizeLimit", Node::str("256Mi")),
                    )
                    .comment("parallel queries use /dev/shm; the runtime's default is 64Mi"),
            )
            .item(
                Node::map()
                    .with("name", Node::str("init"))
                    .with(
                        "configMap",
                        Node::map()
                            .with("name", Node::str(init_name(name)))
                            .with(
                                "items",
                                Node::seq().item(
                                    Node::map()
                                        .with("key", Node::str("init.sh"))
                                        .with("path", Node::str(crate::postgres::init_file(name))),
                                ),
                            ),
                    )
                    .comment("the app's role, database, grants and extensions, made when the volume is initialised"),
            );
        if !file_keys.is_empty() {
            let mut items = Node::seq();
            for key in &file_keys {
                items.push(
                    Node::map()
                        .with("key", Node::str(key))
                        .with("path", Node::str(key)),
                );
            }
            volumes.push(
                Node::map()
                    .with("name", Node::str("secrets"))
                    .with(
                        "secret",
                        Node::map()
                            .with("secretName", Node::str(secrets_name(model)))
                            .with("items", items)
                            .with(
                                "defaultMode",
                                Node::int(0o440).comment(
                                    "0440 (decimal here): the pod's group (fsGroup) reads it",
                                ),
                            ),
                    )
                    .from(&[&pp("password")]),
            );
        }
        let pod = self.data_pod(
            K8S_POSTGRES_UID,
            c,
            volumes,
            "a high uid of its own (the image runs as any user: nss_wrapper, PGDATA inside the volume)",
        );
        let storage = claim_size(pg);
        self.stateful_set(name, "database", &base, pod, &storage, 120);
        let script = crate::postgres::init_script(model, name, crate::postgres::Flavor::Container)
            .finish("init.sh");
        let init = init_name(name);
        let node = self
            .resource("v1", "ConfigMap", self.metadata(&init, "database"))
            .with(
                "data",
                Node::map().with(
                    "init.sh",
                    Node::str(script.text).from(&[&pp("user"), &pp("database"), &pp("extensions")]),
                ),
            );
        self.add("ConfigMap", &init, node.from(&[&base]));
        if pg.backup.is_some() {
            self.postgres_backup(name);
        }
        self.headless_service(name, "database", "postgres", pg.port, &pp("port"), &base);

        if pg.pooler.is_some() {
            self.pooler(name);
        }
    }

    /// The scheduled dump of postgres `name`: a CronJob running kiln's dump once in the
    /// server's image, as the app's role (it owns every object), into a claim of its own.
    pub(super) fn postgres_backup(&mut self, name: &str) {
        let model = self.model;
        let pg = &model.postgres[name];
        let base = pointer(&["postgres", name]);
        let bp = format!("{base}/backup");
        let pp = |f: &str| format!("{base}/{f}");
        let job = crate::postgres::backup_name(name);
        let dir = "/backups";
        let script = crate::postgres::container_backup_script(pg, dir);
        let mut env = Node::seq()
            .item(
                Node::map()
                    .with("name", Node::str("KILN_BACKUP_ONCE"))
                    .with("value", Node::str("1")),
            )
            .item(
                Node::map()
                    .with("name", Node::str("PGHOST"))
                    .with("value", Node::str(name)),
            )
            .item(
                Node::map()
                    .with("name", Node::str("PGPORT"))
                    .with("value", Node::str(pg.port.to_string()))
                    .from(&[&pp("port")]),
            )
            .item(
                Node::map()
                    .with("name", Node::str("PGUSER"))
                    .with("value", Node::str(k8s_escape(&pg.user)))
                    .from(&[&pp("user")]),
            )
            .item(
                Node::map()
                    .with("name", Node::str("PGDATABASE"))
                    .with("value", Node::str(k8s_escape(&pg.database)))
                    .from(&[&pp("database")]),
            );
        let file_secret = pg
            .password
            .as_ref()
            .filter(|pw| model.secrets.get(*pw).is_some_and(|x| x.as_file));
        let mut mounts = Node::seq()
            .item(
                Node::map()
                    .with("name", Node::str("backups"))
                    .with("mountPath", Node::str(dir)),
            )
            .item(
                Node::map()
                    .with("name", Node::str("tmp"))
                    .with("mountPath", Node::str("/tmp")),
            );
        let mut volumes = Node::seq()
            .item(Node::map().with("name", Node::str("backups")).with(
                "persistentVolumeClaim",
                Node::map().with("claimName", Node::str(&job)),
            ))
            .item(
                Node::map()
                    .with("name", Node::str("tmp"))
                    .with("emptyDir", Node::map()),
            );
        match (&pg.password, file_secret) {
            (Some(pw), Some(_)) => {
                env.push(
                    Node::map()
                        .with("name", Node::str("PGPASSWORD_FILE"))
                        .with("value", Node::str(format!("{SECRET_FILES_DIR}/{pw}")))
                        .from(&[&pp("password")]),
                );
                mounts.push(
                    Node::map()
                        .with("name", Node::str("secrets"))
                        .with("mountPath", Node::str(SECRET_FILES_DIR))
                        .with("readOnly", Node::bool(true)),
                );
                volumes.push(
                    Node::map().with("name", Node::str("secrets")).with(
                        "secret",
                        Node::map()
                            .with("secretName", Node::str(secrets_name(model)))
                            .with(
                                "items",
                                Node::seq().item(
                                    Node::map()
                                        .with("key", Node::str(pw))
                                        .with("path", Node::str(pw)),
                                ),
                            )
                            .with("defaultMode", Node::int(0o440)),
                    ),
                );
            }
            (Some(pw), None) => {
                env.push(self.secret_ref("PGPASSWORD", pw, false, &[&pp("password")]))
            }
            (None, _) => {}
        }
        let container = Node::map()
            .with("name", Node::str("backup"))
            .with("image", Node::str(&pg.image).from(&[&pp("image")]))
            .with("imagePullPolicy", self.pull_policy(&pg.image))
            .with(
                "command",
                Node::strs(["/bin/sh".to_owned(), "-c".into(), script])
                    .from(&[&bp, &format!("{bp}/keep"), &format!("{bp}/verify")])
                    .comment("pg_dump, the proof it restores (pg_restore --list), the rename and the pruning"),
            )
            .with("env", env)
            .with(
                "resources",
                Node::map()
                    .with("requests", Node::map().with("cpu", Node::str("100m")).with("memory", Node::str("128Mi")))
                    .with("limits", Node::map().with("cpu", Node::str("1")).with("memory", Node::str("512Mi")))
                    .comment("kiln's defaults for a dump"),
            )
            .with("volumeMounts", mounts)
            .with("securityContext", Self::container_security(true, &[], &[], &[]));
        let mut pod = self.data_pod(
            K8S_POSTGRES_UID,
            container,
            volumes,
            "the database's uid: fsGroup makes the claim writable",
        );
        pod.set("restartPolicy", Node::str("OnFailure"));
        let spec = Node::map()
            .with(
                "schedule",
                Node::str(crate::postgres::cron_schedule(pg))
                    .from(&[&format!("{bp}/every"), &format!("{bp}/at")]),
            )
            .with("timeZone", Node::str("Etc/UTC"))
            .with(
                "concurrencyPolicy",
                Node::str("Forbid").comment("one dump at a time"),
            )
            .with("startingDeadlineSeconds", Node::int(3600))
            .with("successfulJobsHistoryLimit", Node::int(3))
            .with("failedJobsHistoryLimit", Node::int(3))
            .with(
                "jobTemplate",
                Node::map().with(
                    "spec",
                    Node::map().with("backoffLimit", Node::int(2)).with(
                        "template",
                        Node::map()
                            .with(
                                "metadata",
                                Node::map().with("labels", self.labels(&job, "backup")),
                            )
                            .with("spec", pod),
                    ),
                ),
            );
        let node = self
            .resource("batch/v1", "CronJob", self.metadata(&job, "backup"))
            .with("spec", spec);
        self.add("CronJob", &job, node.from(&[&bp]));
        let storage = claim_size(pg);
        let claim = self
            .resource("v1", "PersistentVolumeClaim", self.metadata(&job, "backup"))
            .with(
                "spec",
                Node::map()
                    .with("accessModes", Node::strs(["ReadWriteOnce"]))
                    .with(
                        "resources",
                        Node::map().with(
                            "requests",
                            Node::map().with(
                                "storage",
                                Node::str(storage)
                                    .from(&[&pp("storage")])
                                    .comment("the database's size: room for the kept dumps"),
                            ),
                        ),
                    ),
            );
        self.add("PersistentVolumeClaim", &job, claim.from(&[&bp]));
    }

    pub(super) fn data_pod(&mut self, uid: u32, container: Node, volumes: Node, why: &str) -> Node {
        Node::map()
            .with("serviceAccountName", Node::str(&self.model.project.name))
            .with("automountServiceAccountToken", Node::bool(false))
            .with("enableServiceLinks", Node::bool(false))
            .with(
                "securityContext",
                self.pod_security(uid, uid, &[]).comment(why),
            )
            .with("containers", Node::seq().item(container))
            .with("volumes", volumes)
    }

    pub(super) fn stateful_set(
        &mut self,
        name: &str,
        component: &str,
        base: &str,
        mut pod: Node,
        storage: &str,
        grace: i64,
    ) {
        pod.set("terminationGracePeriodSeconds", Node::int(grace));
        let spec = Node::map()
            .with("serviceName", Node::str(name))
            .with("replicas", Node::int(1))
            .with(
                "selector",
                Node::map().with("matchLabels", self.selector(name)),
            )
            .with(
                "template",
                Node::map()
                    .with(
                        "metadata",
                        Node::map().with("labels", self.labels(name, component)),
                    )
                    .with("spec", pod),
            )
            .with(
                "volumeClaimTemplates",
                Node::seq().item(
                    Node::map()
                        .with("metadata", Node::map().with("name", Node::str("data")))
                        .with(
                            "spec",
                            Node::map()
                                .with("accessModes", Node::strs(["ReadWriteOnce"]))
                                .with(
                                    "resources",
                                    Node::map().with(
                                        "requests",
                                        Node::map().with(
                                            "storage",
                                            Node::str(storage)
                                                .comment("kiln's default: the spec has no size"),
                                        ),
                                    ),
                                ),
                        ),
                ),
            );
        let node = self
            .resource("apps/v1", "StatefulSet", self.metadata(name, component))
            .with("spec", spec);
        self.add("StatefulSet", name, node.from(&[base]));
    }

    pub(super) fn headless_service(
        &mut self,
        name: &str,
        component: &str,
        port_name: &str,
        port: u16,
        port_ptr: &str,
        base: &str,
    ) {
        let node = self.resource("v1", "Service", self.metadata(name, component)).with(
            "spec",
            Node::map()
                .with("clusterIP", Node::str("None").comment("headless: the name resolves to the pod (and is the StatefulSet's serviceName)"))
                .with("selector", self.selector(name))
                .with(
                    "ports",
                    Node::seq().item(
                        Node::map()
                            .with("name", Node::str(port_name))
                            .with("port", Node::int(port))
                            .with("targetPort", Node::str(port_name))
                            .with("protocol", Node::str("TCP"))
                            .from(&[port_ptr]),
                    ),
                ),
        );
        self.add("Service", name, node.from(&[base]));
    }

    pub(super) fn pooler(&mut self, pg_name: &str) {
        let model = self.model;
        let pg = &model.postgres[pg_name];
        let pool = pg.pooler.as_ref().expect("called for a pooler");
        let base = format!("{}/pooler", pointer(&["postgres", pg_name]));
        let pl = |f: &str| format!("{base}/{f}");
        let name = pool.name.clone();
        let files = pgbouncer_files(model).artifacts;
        let ini_name = pooler_ini_name(&files, pg_name, pool);
        let ini = files.iter().find(|a| a.path == ini_name);

        if let Some(ini) = ini {
            let mut data = Node::map();
            data.set("pgbouncer.ini", Node::str(&ini.text).from(&[&base]));
            let cm = self
                .resource("v1", "ConfigMap", self.metadata(&name, "pooler"))
                .with("data", data);
            self.add("ConfigMap", &name, cm.from(&[&base]));
        }
        let auth_file = pool.auth_file.clone();
        let userlist = userlist_name(model);
        let c = Node::map()
            .with("name", Node::str("pgbouncer"))
            .with("image", Node::str(&pool.image).from(&[&pl("image")]))
            .with("imagePullPolicy", self.pull_policy(&pool.image))
            .with(
                "command",
                Node::strs(["pgbouncer", "/etc/pgbouncer/pgbouncer.ini"])
                    .comment("the files are mounted: no entrypoint generates them"),
            )
            .with(
                "ports",
                Node::seq().item(
                    Node::map()
                        .with("name", Node::str("pgbouncer"))
                        .with("containerPort", Node::int(pool.port))
                        .with("protocol", Node::str("TCP"))
                        .from(&[&pl("port")]),
                ),
            )
            .with(
                "readinessProbe",
                Node::map()
                    .with(
                        "tcpSocket",
                        Node::map().with("port", Node::str("pgbouncer")),
                    )
                    .with("initialDelaySeconds", Node::int(2))
                    .with("periodSeconds", Node::int(10))
                    .with("timeoutSeconds", Node::int(3)),
            )
            .with(
                "livenessProbe",
                Node::map()
                    .with(
                        "tcpSocket",
                        Node::map().with("port", Node::str("pgbouncer")),
                    )
                    .with("initialDelaySeconds", Node::int(10))
                    .with("periodSeconds", Node::int(30))
                    .with("timeoutSeconds", Node::int(5))
                    .with("failureThreshold", Node::int(6)),
            );
        let mut c = c;
        if let Some(r) = resources(&pl("resources"), &pool.resources) {
            c.set("resources", r);
        }
        c.set(
            "volumeMounts",
            Node::seq()
                .item(
                    Node::map()
                        .with("name", Node::str("config"))
                        .with("mountPath", Node::str("/etc/pgbouncer/pgbouncer.ini"))
                        .with("subPath", Node::str("pgbouncer.ini"))
                        .with("readOnly", Node::bool(true)),
                )
                .item(
                    Node::map()
                        .with("name", Node::str("userlist"))
                        .with("mountPath", Node::str(&auth_file))
                        .with("subPath", Node::str("userlist.txt"))
                        .with("readOnly", Node::bool(true))
                        .from(&[&pl("auth-file")]),
                )
                .item(
                    Node::map()
                        .with("name", Node::str("tmp"))
                        .with("mountPath", Node::str("/tmp")),
                ),
        );
        c.set(
            "securityContext",
            Self::container_security(true, &[], &[], &[]),
        );
        let volumes = Node::seq()
            .item(
                Node::map()
                    .with("name", Node::str("config"))
                    .with("configMap", Node::map().with("name", Node::str(&name))),
            )
            .item(
                Node::map()
                    .with("name", Node::str("userlist"))
                    .with(
                        "secret",
                        Node::map().with("secretName", Node::str(&userlist)).with(
                            "defaultMode",
                            Node::int(0o440).comment("0440: readable by the pod's group only"),
                        ),
                    )
                    .from(&[&pl("auth-file")])
                    .comment(format!(
                        "create it: userlist.txt with the line \"{}\" \"<the DB_PASSWORD value>\"",
                        pg.user
                    )),
            )
            .item(
                Node::map()
                    .with("name", Node::str("tmp"))
                    .with("emptyDir", Node::map()),
            );
        let mut pod = self.data_pod(
            K8S_PGBOUNCER_UID,
            c,
            volumes,
            "a high uid of its own: pgbouncer only reads its mounted files",
        );
        pod.set("terminationGracePeriodSeconds", Node::int(30));
        let mut template_meta = Node::map().with("labels", self.labels(&name, "pooler"));
        if let Some(ini) = ini {
            template_meta.set(
                "annotations",
                Node::map().with(
                    "kiln.dev/config-hash",
                    Node::str(format!("{:016x}", fnv1a(ini.text.as_bytes())))
                        .comment("rolls the pods when pgbouncer.ini changes"),
                ),
            );
        }
        let spec = Node::map()
            .with("replicas", Node::int(1))
            .with("revisionHistoryLimit", Node::int(5))
            .with(
                "selector",
                Node::map().with("matchLabels", self.selector(&name)),
            )
            .with(
                "template",
                Node::map()
                    .with("metadata", template_meta)
                    .with("spec", pod),
            );
        let node = self
            .resource("apps/v1", "Deployment", self.metadata(&name, "pooler"))
            .with("spec", spec);
        self.add("Deployment", &name, node.from(&[&base]));
        let svc = self
            .resource("v1", "Service", self.metadata(&name, "pooler"))
            .with(
                "spec",
                Node::map()
                    .with("type", Node::str("ClusterIP"))
                    .with("selector", self.selector(&name))
                    .with(
                        "ports",
                        Node::seq().item(
                            Node::map()
                                .with("name", Node::str("pgbouncer"))
                                .with("port", Node::int(pool.port))
                                .with("targetPort", Node::str("pgbouncer"))
                                .with("protocol", Node::str("TCP"))
                                .from(&[&pl("port")]),
                        ),
                    ),
            );
        self.add("Service", &name, svc.from(&[&base]));
    }

    pub(super) fn redis(&mut self, name: &str) {
        let model = self.model;
        let r = &model.redis[name];
        let base = pointer(&["redis", name]);
        let rp = |f: &str| format!("{base}/{f}");
        if r.replicas > 0 {
            self.unsupported(rp("replicas"), format!("{} read replica(s) of redis `{name}`: failing over and re-pointing replicas needs a controller, which plain manifests are not; kiln emits the primary and leaves the group to an operator or chart (Redis Sentinel in the Bitnami chart, Spotahome's redis-operator)", r.replicas));
        }
        if r.sentinel.is_some() {
            self.unsupported(rp("sentinel"), format!("the sentinels of redis `{name}` need the replicas above: `${{{name}.sentinel-url}}` names sentinels these manifests do not run"));
        }
        let ptrs = redis_pointers(name, r);
        let mut c = Node::map()
            .with("name", Node::str("redis"))
            .with("image", Node::str(&r.image).from(&[&rp("image")]))
            .with("imagePullPolicy", self.pull_policy(&r.image));
        match &r.password {
            Some(pw) => {
                c.set(
                    "command",
                    Node::strs(["sh".to_owned(), "-c".into(), k8s_escape(&redis_script(name, r, RedisNode::Alone, "REDISCLI_AUTH", "$"))])
                        .from_all(&ptrs)
                        .comment("requirepass arrives on stdin (`redis-server -`), so the password is in no command line"),
                );
                c.set(
                    "env",
                    Node::seq().item(self.secret_ref(
                        "REDISCLI_AUTH",
                        pw,
                        false,
                        &[&rp("password")],
                    )),
                );
            }
            None => {
                let mut cmd = vec!["redis-server".to_owned()];
                for (flag, value, _) in redis_options(name, r) {
                    cmd.push(flag);
                    cmd.push(k8s_escape(&value));
                }
                c.set("command", Node::strs(cmd).from_all(&ptrs));
            }
        }
        c.set(
            "ports",
            Node::seq().item(
                Node::map()
                    .with("name", Node::str("redis"))
                    .with("containerPort", Node::int(r.port))
                    .with("protocol", Node::str("TCP"))
                    .from(&[&rp("port")]),
            ),
        );
        c.set(
            "readinessProbe",
            Node::map()
                .with(
                    "exec",
                    Node::map().with(
                        "command",
                        Node::strs([
                            "sh".to_owned(),
                            "-c".into(),
                            format!("redis-cli -p {} ping | grep -q PONG", r.port),
                        ]),
                    ),
                )
                .with("initialDelaySeconds", Node::int(5))
                .with("periodSeconds", Node::int(10))
                .with("timeoutSeconds", Node::int(5)),
        );
        c.set(
            "livenessProbe",
            Node::map()
                .with("tcpSocket", Node::map().with("port", Node::str("redis")))
                .with("initialDelaySeconds", Node::int(15))
                .with("periodSeconds", Node::int(30))
                .with("timeoutSeconds", Node::int(5))
                .with("failureThreshold", Node::int(6)),
        );
        if let Some(res) = resources(&rp("resources"), &r.resources) {
            c.set("resources", res);
        }
        c.set(
            "volumeMounts",
            Node::seq()
                .item(
                    Node::map()
                        .with("name", Node::str("data"))
                        .with("mountPath", Node::str("/data")),
                )
                .item(
                    Node::map()
                        .with("name", Node::str("tmp"))
                        .with("mountPath", Node::str("/tmp")),
                ),
        );
        c.set(
            "securityContext",
            Self::container_security(true, &[], &[], &[]),
        );
        let volumes = Node::seq().item(
            Node::map()
                .with("name", Node::str("tmp"))
                .with("emptyDir", Node::map()),
        );
        let pod = self.data_pod(
            K8S_REDIS_UID,
            c,
            volumes,
            "a high uid of its own: redis needs only a writable /data (fsGroup)",
        );
        // Room for the RDB/AOF files: twice maxmemory, at least 1Gi.
        let gi = r.maxmemory.map_or(1, |m| (2 * m).div_ceil(1 << 30).max(1));
        self.stateful_set(name, "cache", &base, pod, &format!("{gi}Gi"), 60);
        self.headless_service(name, "cache", "redis", r.port, &rp("port"), &base);
    }
}
