//! NetworkPolicies: default deny, then each allowed path between pods.

use super::*;

impl Cx<'_> {
    pub(super) fn network_policies(&mut self) {
        let model = self.model;
        let ns = model.kubernetes.namespace.clone();
        let deny = Node::map()
            .with("apiVersion", Node::str("networking.k8s.io/v1"))
            .with("kind", Node::str("NetworkPolicy"))
            .with(
                "metadata",
                Node::map()
                    .with("name", Node::str("default-deny"))
                    .with("namespace", Node::str(&ns).from(&["/kubernetes/namespace"]))
                    .with("labels", Node::map().with("app.kubernetes.io/part-of", Node::str(&model.project.name)).with("app.kubernetes.io/managed-by", Node::str("kiln"))),
            )
            .with(
                "spec",
                Node::map()
                    .with("podSelector", Node::map().comment("every pod of the namespace: no ingress unless a policy below allows it"))
                    .with("policyTypes", Node::strs(["Ingress"])),
            );
        self.add("NetworkPolicy", "default-deny", deny);

        // Web services from the ingress controller.
        let controller_ns = if model.kubernetes.ingress_class == "nginx" {
            "ingress-nginx".to_owned()
        } else {
            self.unsupported(
                "/kubernetes/ingress-class".into(),
                format!("kiln assumes the `{0}` ingress controller runs in namespace `{0}` (the web services accept traffic from it only)", model.kubernetes.ingress_class),
            );
            model.kubernetes.ingress_class.clone()
        };
        for (name, s) in &model.services {
            let Some(port) = s
                .port
                .filter(|_| s.kind == ServiceKind::Web && is_upstream(model, name))
            else {
                continue;
            };
            let from = Node::seq().item(Node::map().with(
                "namespaceSelector",
                Node::map().with(
                    "matchLabels",
                    Node::map().with("kubernetes.io/metadata.name", Node::str(&controller_ns)),
                ),
            ));
            let mut ports = vec![(port, sp(name, "port"))];
            if let Some(first) = sidecar_pointers(model, name).into_iter().next() {
                ports.push((crate::nginx::STATIC_SIDECAR_PORT, first));
            }
            self.allow(name, "web", from, &ports, "the ingress controller only");
        }
        // Datastores from the pods that use them.
        for (pg_name, pg) in &model.postgres {
            let base = pointer(&["postgres", pg_name]);
            let backup = pg
                .backup
                .as_ref()
                .map(|_| crate::postgres::backup_name(pg_name));
            match &pg.pooler {
                Some(pool) => {
                    let mut direct = vec![pool.name.as_str()];
                    direct.extend(backup.as_deref());
                    let from = self.pods(&direct);
                    self.allow(
                        pg_name,
                        "database",
                        from,
                        &[(pg.port, format!("{base}/port"))],
                        "its pgbouncer only",
                    );
                    let clients = clients(model, pg_name);
                    let from = self.pods(&clients);
                    self.allow(
                        &pool.name,
                        "pooler",
                        from,
                        &[(pool.port, format!("{base}/pooler/port"))],
                        "the app services that use it only",
                    );
                }
                None => {
                    let mut clients = clients(model, pg_name);
                    clients.extend(backup.as_deref());
                    let from = self.pods(&clients);
                    self.allow(
                        pg_name,
                        "database",
                        from,
                        &[(pg.port, format!("{base}/port"))],
                        "the app services that use it only",
                    );
                }
            }
        }
        for (name, r) in &model.redis {
            let clients = clients(model, name);
            let from = self.pods(&clients);
            self.allow(
                name,
                "cache",
                from,
                &[(r.port, pointer(&["redis", name, "port"]))],
                "the app services that use it only",
            );
        }
    }

    pub(super) fn pods(&self, names: &[&str]) -> Node {
        let mut seq = Node::seq();
        for n in names {
            seq.push(
                Node::map()
                    .with(
                        "podSelector",
                        Node::map().with("matchLabels", self.selector(n)),
                    )
                    .from(&[&sp(n, "uses")]),
            );
        }
        seq
    }

    pub(super) fn allow(
        &mut self,
        name: &str,
        component: &str,
        from: Node,
        ports: &[(u16, String)],
        who: &str,
    ) {
        let mut rule = Node::map();
        if from.is_empty() {
            // No client: the policy selects the pods and allows nothing.
        } else {
            rule.set("from", from);
            let mut list = Node::seq();
            for (port, ptr) in ports {
                list.push(
                    Node::map()
                        .with("protocol", Node::str("TCP"))
                        .with("port", Node::int(*port))
                        .from(&[ptr]),
                );
            }
            rule.set("ports", list);
        }
        let ingress = if rule.is_empty() {
            Node::seq()
        } else {
            Node::seq().item(rule)
        };
        let spec = Node::map()
            .with(
                "podSelector",
                Node::map().with("matchLabels", self.selector(name)),
            )
            .with("policyTypes", Node::strs(["Ingress"]))
            .with(
                "ingress",
                ingress.comment(format!("`{name}` accepts connections from {who}")),
            );
        let pname = format!("{name}-ingress");
        let node = self
            .resource(
                "networking.k8s.io/v1",
                "NetworkPolicy",
                self.metadata(&pname, component),
            )
            .with("spec", spec);
        self.add("NetworkPolicy", &pname, node);
    }
}
