//! The app's workloads: a Deployment per service, its containers, probes and volumes.

use super::*;

impl Cx<'_> {
    /// The container of service `name`, and the volumes of its pod (named with
    /// `vol_prefix`, so that an init container's do not clash with the main container's).
    pub(super) fn container(&mut self, name: &str, s: &Service, vol_prefix: &str) -> (Node, Node) {
        let model = self.model;
        let p = |f: &str| sp(name, f);
        let base = pointer(&["services", name]);
        let image = match &s.image {
            Some(i) => i.clone(),
            None => {
                let placeholder = format!("{}-{name}", model.project.name);
                self.unsupported(
                    p("image"),
                    format!("service `{name}` names no image: the manifest uses the placeholder `{placeholder}`; set `image` in the spec or override it with kustomize `images:`"),
                );
                placeholder
            }
        };
        let mut c = Node::map()
            .with("name", Node::str(name))
            .with("image", Node::str(&image).from(&[&p("image")]))
            .with("imagePullPolicy", self.pull_policy(&image));
        if let Some((exe, args)) = s.run.argv.split_first() {
            c.set("command", Node::strs([k8s_escape(exe)]).from(&[&p("run")]));
            if !args.is_empty() {
                c.set(
                    "args",
                    Node::strs(args.iter().map(|a| k8s_escape(a))).from(&[&p("run")]),
                );
            }
        }
        if let (ServiceKind::Web, Some(port)) = (s.kind, s.port) {
            c.set(
                "ports",
                Node::seq().item(
                    Node::map()
                        .with("name", Node::str("http"))
                        .with("containerPort", Node::int(port))
                        .with("protocol", Node::str("TCP"))
                        .from(&[&p("port")]),
                ),
            );
        }

        // Environment: the shared ConfigMap, then secrets, own values, values embedding secrets.
        if !self.shared_env.is_empty() {
            c.set(
                "envFrom",
                Node::seq()
                    .item(Node::map().with(
                        "configMapRef",
                        Node::map().with("name", Node::str(format!("{}-env", model.project.name))),
                    ))
                    .from(&["/env"]),
            );
        }
        let host = |h: &str| model.container_host(h);
        let mut secret_entries: BTreeMap<String, Node> = BTreeMap::new();
        let mut plain = Vec::new();
        let mut wired = Vec::new();
        let mut file_secrets: Vec<(String, String)> = Vec::new();
        for (var, v) in &s.env {
            let ep = env_pointer(name, var);
            match v {
                EnvValue::Secret(sec) if model.secrets.get(sec).is_some_and(|x| x.as_file) => {
                    plain.push(
                        Node::map()
                            .with("name", Node::str(secret_file_variable(var)))
                            .with("value", Node::str(format!("{SECRET_FILES_DIR}/{sec}")))
                            .from(&[&ep]),
                    );
                    file_secrets.push((sec.clone(), ep));
                }
                EnvValue::Secret(sec) => {
                    let optional = model.secrets.get(sec).is_some_and(|x| x.optional);
                    secret_entries.insert(var.clone(), self.secret_ref(var, sec, optional, &[&ep]));
                }
                EnvValue::Wired(parts) if v.is_secret() => {
                    let value: String = parts
                        .iter()
                        .map(|part| match part {
                            Part::Text(t) => k8s_escape(t),
                            Part::Host(h) => host(h),
                            Part::Secret(sec) => format!("$({sec})"),
                        })
                        .collect();
                    wired.push(
                        Node::map()
                            .with("name", Node::str(var))
                            .with("value", Node::str(value))
                            .from(&[&ep]),
                    );
                    for sec in v.secrets() {
                        if !secret_entries.contains_key(sec) && !s.env.contains_key(sec) {
                            let optional = model.secrets.get(sec).is_some_and(|x| x.optional);
                            let sp = format!("/secrets/{}", pointer_segment(sec));
                            secret_entries.insert(
                                sec.to_owned(),
                                self.secret_ref(sec, sec, optional, &[&sp]),
                            );
                        }
                    }
                }
                other if !self.shared_env.contains_key(var) => {
                    let value = other.render(&host).unwrap_or_default();
                    plain.push(
                        Node::map()
                            .with("name", Node::str(var))
                            .with("value", Node::str(k8s_escape(&value)))
                            .from(&[&ep]),
                    );
                }
                _ => {}
            }
        }
        let mut env = Node::seq();
        for n in secret_entries.into_values().chain(plain) {
            env.push(n);
        }
        for (i, n) in wired.into_iter().enumerate() {
            env.push(if i == 0 { n.comment("after the secrets they embed: $(NAME) expands only variables defined before it") } else { n });
        }
        if !env.is_empty() {
            c.set("env", env);
        }
        if let Some(r) = resources(&format!("{base}/resources"), &s.resources) {
            c.set("resources", r);
        }
        self.app_probes(name, s, &mut c);

        let mut mounts = Node::seq();
        let mut vols = Node::seq();
        for t in &s.tmpfs {
            let vname = format!("{vol_prefix}tmpfs-{}", dns_label(t));
            mounts.push(
                Node::map()
                    .with("name", Node::str(&vname))
                    .with("mountPath", Node::str(t))
                    .from(&[&p("tmpfs")]),
            );
            vols.push(
                Node::map()
                    .with("name", Node::str(&vname))
                    .with("emptyDir", Node::map())
                    .from(&[&p("tmpfs")]),
            );
        }
        for (vol, v) in &s.volumes {
            let vp = format!("{base}/volumes/{}", pointer_segment(vol));
            let vname = format!("{vol_prefix}volume-{}", dns_label(vol));
            let mut m = Node::map()
                .with("name", Node::str(&vname))
                .with("mountPath", Node::str(&v.path));
            if v.read_only {
                m.set(
                    "readOnly",
                    Node::bool(true).from(&[&format!("{vp}/read-only")]),
                );
            }
            mounts.push(m.from(&[&vp]));
            vols.push(
                Node::map()
                    .with("name", Node::str(&vname))
                    .with(
                        "persistentVolumeClaim",
                        Node::map().with("claimName", Node::str(vol)),
                    )
                    .from(&[&vp]),
            );
        }
        // App files: one ConfigMap per service, each file mounted read-only by subPath.
        if !s.files.is_empty() {
            let vname = format!("{vol_prefix}files");
            let mut items = Node::seq();
            for (path, key) in file_keys(s) {
                let fp = crate::app_file_pointer(name, path);
                mounts.push(
                    Node::map()
                        .with("name", Node::str(&vname))
                        .with("mountPath", Node::str(path))
                        .with("subPath", Node::str(&key))
                        .with("readOnly", Node::bool(true))
                        .from(&[&fp]),
                );
                let mode = &s.files[path].mode;
                items.push(
                    Node::map()
                        .with("key", Node::str(&key))
                        .with("path", Node::str(&key))
                        .with(
                            "mode",
                            Node::int(i64::from_str_radix(mode, 8).unwrap_or(0o444))
                                .comment(format!("{mode} (decimal here)")),
                        )
                        .from(&[&fp, &format!("{fp}/mode")]),
                );
            }
            vols.push(
                Node::map()
                    .with("name", Node::str(&vname))
                    .with(
                        "configMap",
                        Node::map()
                            .with("name", Node::str(files_name(name)))
                            .with("items", items),
                    )
                    .from(&[&p("files")]),
            );
        }
        // Secrets delivered as files: the project Secret's keys, read-only, owned by the pod's
        // fsGroup and readable by it alone.
        if !file_secrets.is_empty() {
            let vname = format!("{vol_prefix}secrets");
            let from: Vec<&str> = file_secrets.iter().map(|(_, ep)| ep.as_str()).collect();
            mounts.push(
                Node::map()
                    .with("name", Node::str(&vname))
                    .with("mountPath", Node::str(SECRET_FILES_DIR))
                    .with("readOnly", Node::bool(true))
                    .from(&from),
            );
            let mut items = Node::seq();
            for (sec, ep) in &file_secrets {
                items.push(
                    Node::map()
                        .with("key", Node::str(sec))
                        .with("path", Node::str(sec))
                        .from(&[ep]),
                );
            }
            let mut secret = Node::map()
                .with("secretName", Node::str(secrets_name(model)))
                .with("items", items)
                .with(
                    "defaultMode",
                    Node::int(0o440)
                        .comment("0440 (decimal here): the pod's group (fsGroup) reads them"),
                );
            if file_secrets
                .iter()
                .all(|(sec, _)| model.secrets.get(sec).is_some_and(|x| x.optional))
            {
                secret.set("optional", Node::bool(true));
            }
            vols.push(
                Node::map()
                    .with("name", Node::str(&vname))
                    .with("secret", secret)
                    .from(&from),
            );
        }
        if !mounts.is_empty() {
            c.set("volumeMounts", mounts);
        }
        c.set(
            "securityContext",
            Self::container_security(
                s.read_only,
                &[&p("read-only")],
                &s.cap_add,
                &[&p("cap-add")],
            ),
        );

        (c, vols)
    }

    pub(super) fn app(&mut self, name: &str, s: &Service) {
        let model = self.model;
        let p = |f: &str| sp(name, f);
        let base = pointer(&["services", name]);
        let component = match s.kind {
            ServiceKind::Web => "web",
            ServiceKind::Worker => "worker",
            ServiceKind::Beat => "beat",
            ServiceKind::Task => "task",
        };

        let (c, mut vols) = self.container(name, s, "");
        // Tasks it depends on run first, as init containers: the pod starts only once each
        // has succeeded (and a failed one keeps it from starting).
        let mut init = Node::seq();
        for (dep, d) in &s.depends_on {
            let Some(task) = model.services.get(dep) else {
                continue;
            };
            let from = format!("{}/{}", p("depends-on"), pointer_segment(dep));
            match d.condition {
                Condition::Completed => {
                    let (ic, ivols) = self.container(dep, task, &format!("{}-", dns_label(dep)));
                    init.push(ic.from(&[&from]));
                    for v in ivols.into_items() {
                        vols.push(v);
                    }
                }
                Condition::Healthy | Condition::Started => self.unsupported(
                    from,
                    format!("`depends-on {dep}`: Kubernetes starts a Deployment's pods without waiting for another's; `{name}` must retry until `{dep}` answers (its readiness probe keeps traffic away meanwhile)"),
                ),
            }
        }
        // Static files in the image: init containers copy each folder into an emptyDir, a
        // sidecar nginx serves them to the ingress controller on its own port.
        let mut sidecar = None;
        if let Some(conf) = crate::nginx::static_sidecar(model, name) {
            let roots = static_roots(model, name);
            let mut sidecar_mounts = Node::seq();
            for (i, (root, from)) in roots.iter().enumerate() {
                let from: Vec<&str> = from.iter().map(String::as_str).collect();
                let vname = format!("static-{}", i + 1);
                let command = crate::compose::copy_command(s, root, "/kiln-static");
                let image = c.get("image").cloned().unwrap_or_else(|| Node::str(name));
                init.push(
                    Node::map()
                        .with("name", Node::str(format!("static-copy-{}", i + 1)))
                        .with("image", image)
                        .with(
                            "imagePullPolicy",
                            self.pull_policy(s.image.as_deref().unwrap_or_default()),
                        )
                        .with("command", Node::strs(command.iter().map(|a| k8s_escape(a))))
                        .with(
                            "volumeMounts",
                            Node::seq().item(
                                Node::map()
                                    .with("name", Node::str(&vname))
                                    .with("mountPath", Node::str("/kiln-static")),
                            ),
                        )
                        .with("resources", static_resources())
                        .with(
                            "securityContext",
                            Self::container_security(true, &[], &[], &[]),
                        )
                        .from_all(&from)
                        .comment(format!(
                            "copies {root} out of the image, for the `static` sidecar"
                        )),
                );
                vols.push(
                    Node::map()
                        .with("name", Node::str(&vname))
                        .with("emptyDir", Node::map())
                        .from_all(&from),
                );
                sidecar_mounts.push(
                    Node::map()
                        .with("name", Node::str(&vname))
                        .with("mountPath", Node::str(root))
                        .with("readOnly", Node::bool(true))
                        .from_all(&from),
                );
            }
            // The service's own volumes it serves (uploads): the pod's claim, read-only.
            let mut mounted = BTreeSet::new();
            for p in crate::pod_served(model, name) {
                let crate::Served::Volume(vol, vpath) = &p.served else {
                    continue;
                };
                if mounted.insert(vol.clone()) {
                    sidecar_mounts.push(
                        Node::map()
                            .with("name", Node::str(format!("volume-{}", dns_label(vol))))
                            .with("mountPath", Node::str(vpath))
                            .with("readOnly", Node::bool(true))
                            .from(&[
                                &format!(
                                    "{}/volumes/{}",
                                    pointer(&["services", name]),
                                    pointer_segment(vol)
                                ),
                                &p.pointer,
                            ]),
                    );
                }
            }
            sidecar_mounts.push(
                Node::map()
                    .with("name", Node::str("static-config"))
                    .with("mountPath", Node::str("/etc/nginx/nginx.conf"))
                    .with("subPath", Node::str("nginx.conf"))
                    .with("readOnly", Node::bool(true)),
            );
            sidecar_mounts.push(
                Node::map()
                    .with("name", Node::str("static-tmp"))
                    .with("mountPath", Node::str("/tmp")),
            );
            vols.push(Node::map().with("name", Node::str("static-config")).with(
                "configMap",
                Node::map().with("name", Node::str(static_name(name))),
            ));
            vols.push(
                Node::map()
                    .with("name", Node::str("static-tmp"))
                    .with("emptyDir", Node::map()),
            );
            let all_from = sidecar_pointers(model, name);
            sidecar = Some(
                Node::map()
                    .with("name", Node::str("static"))
                    .with(
                        "image",
                        Node::str(&model.compose.nginx_image).from(&["/compose/nginx-image"]),
                    )
                    .with(
                        "imagePullPolicy",
                        self.pull_policy(&model.compose.nginx_image),
                    )
                    .with(
                        "command",
                        Node::strs(["nginx", "-g", "daemon off;"])
                            .comment("the image's entrypoint would rewrite its configuration"),
                    )
                    .with(
                        "ports",
                        Node::seq().item(
                            Node::map()
                                .with("name", Node::str("static"))
                                .with(
                                    "containerPort",
                                    Node::int(crate::nginx::STATIC_SIDECAR_PORT),
                                )
                                .with("protocol", Node::str("TCP")),
                        ),
                    )
                    .with(
                        "readinessProbe",
                        Node::map()
                            .with("tcpSocket", Node::map().with("port", Node::str("static")))
                            .with("periodSeconds", Node::int(10)),
                    )
                    .with("resources", static_resources())
                    .with("volumeMounts", sidecar_mounts)
                    .with(
                        "securityContext",
                        Self::container_security(true, &[], &[], &[]),
                    )
                    .from_all(&all_from),
            );
            self.static_config_map(name, conf);
        }
        let (uid, gid) = self.app_user(name, s);
        let mut pod = Node::map()
            .with("serviceAccountName", Node::str(&model.project.name))
            .with("automountServiceAccountToken", Node::bool(false))
            .with(
                "enableServiceLinks",
                Node::bool(false).comment(
                    "no <SERVICE>_PORT variables: they would clash with the app's (DB_PORT …)",
                ),
            )
            .with(
                "securityContext",
                self.pod_security(uid, gid, &[&p("user")]),
            );
        if s.run.stop_signal != "SIGTERM" {
            self.unsupported(
                p("run"),
                format!(
                    "{} stops gracefully on {}, but Kubernetes sends SIGTERM: add a preStop hook that sends it, or rely on the grace period",
                    s.run.program, s.run.stop_signal
                ),
            );
        }
        if let Some(t) = s.stop_timeout {
            pod.set(
                "terminationGracePeriodSeconds",
                Node::int(t as i64).from(&[&p("stop-timeout")]),
            );
        }
        let selector = self.selector(name);
        let mut replicas = s.replicas;
        if s.kind == ServiceKind::Beat && replicas != 1 {
            self.unsupported(p("replicas"), format!("celery beat must run exactly once per schedule: {replicas} replicas emitted as 1"));
            replicas = 1;
        }
        if s.kind == ServiceKind::Web && replicas >= 2 {
            pod.set(
                "topologySpreadConstraints",
                Node::seq().item(
                    Node::map()
                        .with("maxSkew", Node::int(1))
                        .with("topologyKey", Node::str("kubernetes.io/hostname"))
                        .with("whenUnsatisfiable", Node::str("ScheduleAnyway"))
                        .with(
                            "labelSelector",
                            Node::map().with("matchLabels", selector.clone()),
                        )
                        .from(&[&p("replicas")]),
                ),
            );
        }
        if s.kind == ServiceKind::Task {
            let policy = if s.restart == "no" {
                "Never"
            } else {
                "OnFailure"
            };
            pod.set("restartPolicy", Node::str(policy).from(&[&p("restart")]));
        } else if !matches!(s.restart.as_str(), "always" | "unless-stopped") {
            self.unsupported(
                p("restart"),
                format!(
                    "restart `{}`: a Deployment always restarts its pods",
                    s.restart
                ),
            );
        }
        if !init.is_empty() {
            pod.set("initContainers", init);
        }
        let mut containers = Node::seq().item(c);
        if let Some(sc) = sidecar.take() {
            containers.push(sc);
        }
        pod.set("containers", containers);
        if !vols.is_empty() {
            pod.set("volumes", vols);
        }
        let mut template_meta = Node::map().with("labels", self.labels(name, component));
        // The files mounted by subPath never change in a running pod: their digest in the
        // template makes a changed file roll the pods.
        let mut with_files: Vec<(&str, &Service)> = vec![(name, s)];
        for (dep, d) in &s.depends_on {
            if let (Condition::Completed, Some(task)) = (d.condition, model.services.get(dep)) {
                with_files.push((dep, task));
            }
        }
        if let Some(digest) = files_digest(model, &with_files) {
            template_meta.set(
                "annotations",
                Node::map().with(
                    "kiln.dev/files-digest",
                    Node::str(digest)
                        .from(&[&p("files")])
                        .comment("blake3 of the app files: a changed file rolls the pods"),
                ),
            );
        }
        let template = Node::map()
            .with("metadata", template_meta)
            .with("spec", pod);

        let node = if s.kind == ServiceKind::Task {
            let spec = Node::map()
                .with("backoffLimit", Node::int(2))
                .with(
                    "ttlSecondsAfterFinished",
                    Node::int(600).comment(
                        "removed 10 minutes after it ends, so the next apply runs it again",
                    ),
                )
                .with("template", template);
            self.resource("batch/v1", "Job", self.metadata(name, component))
                .with("spec", spec.from(&[&base]))
        } else {
            let mut spec = Node::map()
                .with("replicas", Node::int(replicas).from(&[&p("replicas")]))
                .with("revisionHistoryLimit", Node::int(5))
                .with(
                    "selector",
                    Node::map().with("matchLabels", selector.clone()),
                );
            if s.kind == ServiceKind::Beat {
                spec.set(
                    "strategy",
                    Node::map()
                        .with("type", Node::str("Recreate"))
                        .comment("never two beats at once, not even during a rollout"),
                );
            }
            spec.set("template", template);
            self.resource("apps/v1", "Deployment", self.metadata(name, component))
                .with("spec", spec.from(&[&base]))
        };
        let kind = if s.kind == ServiceKind::Task {
            "Job"
        } else {
            "Deployment"
        };
        self.add(kind, name, node.from(&[&base]));

        if let (ServiceKind::Web, Some(port)) = (s.kind, s.port) {
            let svc = self
                .resource("v1", "Service", self.metadata(name, component))
                .with(
                    "spec",
                    Node::map()
                        .with("type", Node::str("ClusterIP"))
                        .with("selector", selector.clone())
                        .with("ports", {
                            let mut ports = Node::seq().item(
                                Node::map()
                                    .with("name", Node::str("http"))
                                    .with("port", Node::int(port))
                                    .with("targetPort", Node::str("http"))
                                    .with("protocol", Node::str("TCP"))
                                    .from(&[&p("port")]),
                            );
                            let from = sidecar_pointers(model, name);
                            if !from.is_empty() {
                                ports.push(
                                    Node::map()
                                        .with("name", Node::str("static"))
                                        .with("port", Node::int(crate::nginx::STATIC_SIDECAR_PORT))
                                        .with("targetPort", Node::str("static"))
                                        .with("protocol", Node::str("TCP"))
                                        .from_all(&from),
                                );
                            }
                            ports
                        }),
                );
            self.add("Service", name, svc.from(&[&base]));
            if replicas >= 2 {
                let pdb = self
                    .resource(
                        "policy/v1",
                        "PodDisruptionBudget",
                        self.metadata(name, component),
                    )
                    .with(
                        "spec",
                        Node::map()
                            .with("maxUnavailable", Node::int(1))
                            .with("selector", Node::map().with("matchLabels", selector))
                            .from(&[&p("replicas")]),
                    );
                self.add("PodDisruptionBudget", name, pdb);
            }
        }
    }

    /// Web: readiness (HTTP on the health path, often) and liveness (TCP, patient) that
    /// differ; workers: liveness only (a broker ping to themselves); beat and tasks: none.
    pub(super) fn app_probes(&mut self, name: &str, s: &Service, c: &mut Node) {
        let p = |f: &str| sp(name, f);
        match s.kind {
            ServiceKind::Web if s.port.is_some() => {
                let (path, interval, timeout, retries, start) = match &s.health {
                    Some(h) => (
                        Some(h.path.as_str()),
                        h.interval,
                        h.timeout,
                        h.retries,
                        h.start_period,
                    ),
                    None => (None, 30, 5, 3, 20),
                };
                let hp = p("health");
                let readiness = match path {
                    Some(path) => {
                        let mut get = Node::map()
                            .with("path", Node::str(path).from(&[&format!("{hp}/path")]))
                            .with("port", Node::str("http"));
                        let mut headers = Node::seq();
                        if let Some(h) = public_host(self.model, name) {
                            let site = site_upstreams(self.model)
                                .into_iter()
                                .find(|(_, u)| *u == name)
                                .map(|(s, _)| pointer(&["sites", s]))
                                .unwrap_or_default();
                            headers.push(
                                Node::map()
                                    .with("name", Node::str("Host"))
                                    .with("value", Node::str(h))
                                    .from(&[&site]),
                            );
                        }
                        headers.push(
                            Node::map()
                                .with("name", Node::str("X-Forwarded-Proto"))
                                .with("value", Node::str("https")),
                        );
                        get.set(
                            "httpHeaders",
                            headers.comment(
                                "as nginx sends them: passes ALLOWED_HOSTS, no HTTPS redirect",
                            ),
                        );
                        Node::map().with("httpGet", get)
                    }
                    None => {
                        Node::map().with("tcpSocket", Node::map().with("port", Node::str("http")))
                    }
                };
                c.set(
                    "readinessProbe",
                    readiness
                        .with("initialDelaySeconds", Node::int(5))
                        .with("periodSeconds", Node::int(10))
                        .with("timeoutSeconds", Node::int(timeout as i64).from(&[&format!("{hp}/timeout")]))
                        .with("failureThreshold", Node::int(retries).from(&[&format!("{hp}/retries")]))
                        .from(&[&hp])
                        .comment("readiness: the app answers its health path; out of the Service while it does not"),
                );
                c.set(
                    "livenessProbe",
                    Node::map()
                        .with("tcpSocket", Node::map().with("port", Node::str("http")))
                        .with("initialDelaySeconds", Node::int(start as i64).from(&[&format!("{hp}/start-period")]))
                        .with("periodSeconds", Node::int(interval as i64).from(&[&format!("{hp}/interval")]))
                        .with("timeoutSeconds", Node::int(timeout as i64).from(&[&format!("{hp}/timeout")]))
                        .with("failureThreshold", Node::int((retries * 2).max(3)).from(&[&format!("{hp}/retries")]))
                        .from(&[&hp])
                        .comment("liveness: the server still accepts connections (restart only when it is wedged, not when a dependency is down)"),
                );
            }
            ServiceKind::Worker => {
                if let Some(ping) = worker_probe(s, "$") {
                    c.set(
                        "livenessProbe",
                        Node::map()
                            .with("exec", Node::map().with("command", Node::strs(["sh".to_owned(), "-c".into(), ping])))
                            .with("initialDelaySeconds", Node::int(30))
                            .with("periodSeconds", Node::int(60))
                            .with("timeoutSeconds", Node::int(20))
                            .with("failureThreshold", Node::int(3))
                            .from(&[&p("run")])
                            .comment(match s.run.program.as_str() {
                                "celery-worker" => "a worker answers a broker ping addressed to itself (celery@<pod name>)",
                                _ => "the program's own liveness check (its `probe` in the catalog)",
                            }),
                    );
                }
            }
            _ => {}
        }
    }

    /// PersistentVolumeClaims of the app services' named volumes.
    pub(super) fn volumes(&mut self) {
        let mut users: BTreeMap<&str, (u32, Vec<String>)> = BTreeMap::new();
        for (name, s) in &self.model.services {
            for vol in s.volumes.keys() {
                let e = users.entry(vol).or_default();
                e.0 += s.replicas.max(1);
                e.1.push(format!(
                    "{}/volumes/{}",
                    pointer(&["services", name]),
                    pointer_segment(vol)
                ));
            }
        }
        for (vol, (pods, from)) in users {
            let mode = if pods > 1 {
                "ReadWriteMany"
            } else {
                "ReadWriteOnce"
            };
            let node = self
                .resource("v1", "PersistentVolumeClaim", self.metadata(vol, "storage"))
                .with(
                    "spec",
                    Node::map()
                        .with(
                            "accessModes",
                            Node::strs([mode]).comment(if pods > 1 {
                                "mounted by several pods"
                            } else {
                                "mounted by one pod"
                            }),
                        )
                        .with(
                            "resources",
                            Node::map().with(
                                "requests",
                                Node::map().with(
                                    "storage",
                                    Node::str("10Gi")
                                        .comment("kiln's default: the spec has no size"),
                                ),
                            ),
                        )
                        .from_all(&from),
                );
            self.add("PersistentVolumeClaim", vol, node);
        }
    }
}
