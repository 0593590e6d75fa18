//! Ingresses: one per site, its rules, rate limits and the controller-wide settings it needs.

use super::*;

impl Cx<'_> {
    pub(super) fn ingress(&mut self, key: &str, site: &Site) {
        let model = self.model;
        let sp = pointer(&["sites", key]);
        let nginx = model.kubernetes.ingress_class == "nginx";
        let tls_on = site.tls.mode != "off";
        let class_ptr = "/kubernetes/ingress-class";

        self.controller_wide(key, site);

        // Site-level annotations (inherited by every per-path Ingress of the site).
        let mut site_ann: Vec<Annotation> = Vec::new();
        if let Some(b) = &site.max_body_size {
            if nginx {
                site_ann.push((
                    "proxy-body-size".into(),
                    b.clone(),
                    vec![format!("{sp}/max-body-size")],
                ));
            } else {
                self.unsupported(
                    format!("{sp}/max-body-size"),
                    format!(
                        "ingress class `{}` has no body-size annotation kiln knows",
                        model.kubernetes.ingress_class
                    ),
                );
            }
        }
        for (field, value) in [
            ("connect", &site.timeouts.connect),
            ("send", &site.timeouts.send),
            ("read", &site.timeouts.read),
        ] {
            if let Some(v) = value {
                let ptr = format!("{sp}/timeouts/{field}");
                match (nginx, parse_duration(v)) {
                    (true, Some(secs)) => site_ann.push((
                        format!("proxy-{field}-timeout"),
                        secs.to_string(),
                        vec![ptr],
                    )),
                    _ => self.unsupported(
                        ptr,
                        format!("the {field} timeout `{v}` cannot be set on this Ingress"),
                    ),
                }
            }
        }
        let site_zones: Vec<&str> = site
            .rate_limits
            .iter()
            .filter(|(_, r)| r.site_wide)
            .map(|(z, _)| z.as_str())
            .collect();
        if let Some(zone) = site_zones.first() {
            site_ann.extend(self.rate_annotations(key, site, zone, nginx));
        }
        for zone in site_zones.iter().skip(1) {
            self.unsupported(
                format!("{sp}/rate-limits/{}", pointer_segment(zone)),
                format!("ingress-nginx applies one rate limit per Ingress: `{zone}` is left out"),
            );
        }

        // Paths: `/` and every proxy location go to their upstream; a location whose
        // settings ingress-nginx can only set per Ingress gets an Ingress of its own.
        let mut main_paths: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
        main_paths.insert(
            "/".into(),
            (site.upstream.clone(), vec![format!("{sp}/upstream")]),
        );
        let mut own: Vec<OwnPath> = Vec::new();
        let mut zone_paths: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (zone, r) in &site.rate_limits {
            for path in &r.paths {
                zone_paths
                    .entry(path.as_str())
                    .or_default()
                    .push(zone.as_str());
            }
        }
        let mut paths: BTreeSet<&str> = site.locations.keys().map(String::as_str).collect();
        paths.extend(zone_paths.keys().copied());
        for path in paths {
            let lp = format!("{sp}/locations/{}", pointer_segment(path));
            let loc = site.locations.get(path);
            if loc.is_some_and(|l| matches!(l.kind, LocationKind::Static | LocationKind::Media))
                && let Some(svc) = serving_pod(model, &lp)
            {
                // Served by that pod's static sidecar (its port `static`).
                main_paths.insert(path.to_owned(), (svc, vec![lp.clone()]));
                continue;
            }
            if let Some(l) = loc
                && matches!(l.kind, LocationKind::Static | LocationKind::Media)
            {
                self.unsupported(
                    lp.clone(),
                    format!(
                        "an Ingress cannot serve files from a folder: `{path}` goes to `{}`, so the app must serve them (e.g. WhiteNoise), or run a separate static-file Deployment",
                        site.upstream
                    ),
                );
                continue;
            }
            if !path.starts_with('/') {
                continue;
            }
            let upstream = loc
                .and_then(|l| l.upstream.clone())
                .unwrap_or_else(|| site.upstream.clone());
            let mut ann: Vec<Annotation> = Vec::new();
            if let Some(l) = loc {
                if !l.access_log {
                    ann.push((
                        "enable-access-log".into(),
                        "false".into(),
                        vec![format!("{lp}/access-log")],
                    ));
                }
                if let Some(b) = &l.max_body_size {
                    ann.push((
                        "proxy-body-size".into(),
                        b.clone(),
                        vec![format!("{lp}/max-body-size")],
                    ));
                }
                let read =
                    l.read_timeout
                        .as_deref()
                        .or(if l.websocket { Some("3600s") } else { None });
                if let Some(t) = read {
                    match parse_duration(t) {
                        Some(secs) => {
                            let from = vec![format!("{lp}/read-timeout")];
                            ann.push(("proxy-read-timeout".into(), secs.to_string(), from.clone()));
                            if l.websocket {
                                ann.push(("proxy-send-timeout".into(), secs.to_string(), from));
                            }
                        }
                        None => self.unsupported(
                            format!("{lp}/read-timeout"),
                            format!("read timeout `{t}` is not a duration"),
                        ),
                    }
                }
                if !l.allow.is_empty() {
                    ann.push((
                        "whitelist-source-range".into(),
                        l.allow.join(","),
                        vec![format!("{lp}/allow")],
                    ));
                }
                if let Some(z) = &l.rate_limit {
                    ann.extend(self.rate_annotations(key, site, z, nginx));
                }
                if l.cache_control.is_some() || l.expires.is_some() {
                    self.unsupported(lp.clone(), format!("`{path}` sets caching headers, which ingress-nginx adds only through snippets (forbidden, POLICIES #38): set them in the app"));
                }
            }
            for z in zone_paths.get(path).into_iter().flatten() {
                ann.extend(self.rate_annotations(key, site, z, nginx));
            }
            let from = if loc.is_some() {
                vec![lp.clone()]
            } else {
                Vec::new()
            };
            if ann.is_empty() {
                main_paths.insert(path.to_owned(), (upstream, from));
            } else if !nginx {
                self.unsupported(lp, format!("`{path}` needs per-path settings that only ingress-nginx annotations express; class `{}` gets them nowhere", model.kubernetes.ingress_class));
                main_paths.insert(path.to_owned(), (upstream, from));
            } else {
                own.push((path.to_owned(), upstream, ann, from));
            }
        }

        // A `/` location with settings of its own gives them to the site's Ingress; the
        // other paths then need an Ingress each, so they do not inherit them.
        let mut main_ann = site_ann.clone();
        if let Some(i) = own.iter().position(|(p, ..)| p == "/") {
            let (_, upstream, ann_root, from) = own.remove(i);
            for (k, v, f) in ann_root {
                main_ann.retain(|(x, ..)| *x != k);
                main_ann.push((k, v, f));
            }
            let others: Vec<(String, (String, Vec<String>))> = std::mem::take(&mut main_paths)
                .into_iter()
                .filter(|(p, _)| p != "/")
                .collect();
            for (p, (u, f)) in others {
                own.push((p, u, Vec::new(), f));
            }
            main_paths.insert("/".into(), (upstream, from));
        }

        // The site's Ingress: TLS, every host, the plain paths.
        let mut ann = Node::map();
        if tls_on && site.tls.mode == "acme" {
            match &model.kubernetes.cluster_issuer {
                Some(issuer) => ann.set("cert-manager.io/cluster-issuer", Node::str(issuer).from(&["/kubernetes/cluster-issuer", &format!("{sp}/tls")])),
                None => self.unsupported(
                    format!("{sp}/tls"),
                    format!("`tls acme` needs cert-manager: set `kubernetes {{ cluster-issuer \"…\" }}`, or create the Secret `{key}-tls` yourself"),
                ),
            }
        }
        if tls_on && site.tls.mode == "files" {
            self.unsupported(
                format!("{sp}/tls/cert"),
                format!("certificate files live on a host: create the Secret `{key}-tls` from them (`kubectl create secret tls {key}-tls --cert=… --key=…`)"),
            );
        }
        if tls_on
            && nginx
            && let Some(ciphers) = &site.tls.ciphers
        {
            ann.set(
                "nginx.ingress.kubernetes.io/ssl-ciphers",
                Node::str(ciphers).from(&[&format!("{sp}/tls/ciphers")]),
            );
            ann.set(
                "nginx.ingress.kubernetes.io/ssl-prefer-server-ciphers",
                Node::str(if site.tls.prefer_server_ciphers {
                    "true"
                } else {
                    "false"
                })
                .from(&[&format!("{sp}/tls/prefer-server-ciphers")]),
            );
        }
        for (k, v, from) in &main_ann {
            ann.set(
                format!("nginx.ingress.kubernetes.io/{k}"),
                Node::str(v).from_all(from),
            );
        }
        let tls_section = Node::seq().item(
            Node::map()
                .with(
                    "hosts",
                    Node::strs(site.server_names.iter().cloned())
                        .from(&[&sp, &format!("{sp}/aliases")]),
                )
                .with("secretName", Node::str(format!("{key}-tls")))
                .from(&[&format!("{sp}/tls")]),
        );
        let mut spec = Node::map().with(
            "ingressClassName",
            Node::str(&model.kubernetes.ingress_class).from(&[class_ptr]),
        );
        if tls_on {
            spec.set("tls", tls_section.clone());
        }
        spec.set(
            "rules",
            self.rules(
                site,
                &sp,
                main_paths
                    .into_iter()
                    .map(|(p, (u, f))| (p, u, f))
                    .collect(),
            ),
        );
        let mut meta = self.metadata(key, "ingress");
        if !ann.is_empty() {
            meta.set("annotations", ann);
        }
        let node = self
            .resource("networking.k8s.io/v1", "Ingress", meta)
            .with("spec", spec);
        self.add("Ingress", key, node.from(&[&sp]));

        // One Ingress per path with its own settings; ingress-nginx merges them into the
        // host's server (TLS comes from the site's Ingress).
        for (path, upstream, ann_here, from) in own {
            // Unique among every Ingress, the sites' own included.
            let base = format!("{key}-{}", dns_label(&path));
            let mut name = base.clone();
            let mut i = 2;
            while model.sites.contains_key(&name)
                || self.files.contains_key(&format!("ingress-{name}.yaml"))
            {
                name = format!("{base}-{i}");
                i += 1;
            }
            let mut merged: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
            for (k, v, f) in site_ann.iter().chain(ann_here.iter()) {
                merged.insert(k.clone(), (v.clone(), f.clone()));
            }
            let mut a = Node::map();
            for (k, (v, f)) in merged {
                a.set(
                    format!("nginx.ingress.kubernetes.io/{k}"),
                    Node::str(v).from_all(&f),
                );
            }
            let mut spec = Node::map().with(
                "ingressClassName",
                Node::str(&model.kubernetes.ingress_class).from(&[class_ptr]),
            );
            if tls_on {
                spec.set(
                    "tls",
                    tls_section.clone().comment(
                        "the same certificate: this host's HTTPS redirect applies here too",
                    ),
                );
            }
            spec.set(
                "rules",
                self.rules(site, &sp, vec![(path.clone(), upstream, from.clone())]),
            );
            let meta = self.metadata(&name, "ingress").with(
                "annotations",
                a.comment(format!(
                    "the settings of `{path}` alone (certificates: the site's Ingress `{key}`)"
                )),
            );
            let node = self
                .resource("networking.k8s.io/v1", "Ingress", meta)
                .with("spec", spec);
            self.add("Ingress", &name, node.from(&[&sp]).from_all(&from));
        }
    }

    pub(super) fn rules(&self, site: &Site, sp: &str, paths: Vec<Route>) -> Node {
        let mut rules = Node::seq();
        for host in &site.server_names {
            let mut list = Node::seq();
            for (path, upstream, from) in &paths {
                let port = self.model.services.get(upstream).and_then(|s| s.port);
                let sidecar = from
                    .iter()
                    .any(|p| serving_pod(self.model, p).as_deref() == Some(upstream.as_str()));
                let port_node = match port {
                    _ if sidecar => Node::map().with("name", Node::str("static")),
                    Some(_) => Node::map().with("name", Node::str("http")),
                    None => Node::map().with("number", Node::int(80)),
                };
                list.push(
                    Node::map()
                        .with("path", Node::str(path))
                        .with("pathType", Node::str("Prefix"))
                        .with(
                            "backend",
                            Node::map().with(
                                "service",
                                Node::map()
                                    .with("name", Node::str(upstream))
                                    .with("port", port_node),
                            ),
                        )
                        .from_all(from),
                );
            }
            rules.push(
                Node::map()
                    .with("host", Node::str(host))
                    .with("http", Node::map().with("paths", list))
                    .from(&[sp]),
            );
        }
        rules
    }

    /// ingress-nginx `limit-rps`/`limit-rpm` + burst multiplier for zone `zone` of a site.
    pub(super) fn rate_annotations(
        &mut self,
        key: &str,
        site: &Site,
        zone: &str,
        nginx: bool,
    ) -> Vec<Annotation> {
        let rp = format!(
            "{}/rate-limits/{}",
            pointer(&["sites", key]),
            pointer_segment(zone)
        );
        let Some(r) = site.rate_limits.get(zone) else {
            return Vec::new();
        };
        if !nginx {
            self.unsupported(rp, format!("rate limit `{zone}`: ingress class `{}` has no rate-limit annotation kiln knows", self.model.kubernetes.ingress_class));
            return Vec::new();
        }
        let Some((n, unit)) = parse_rate(&r.rate) else {
            self.unsupported(
                format!("{rp}/rate"),
                format!("rate `{}` is not N r/s or N r/m", r.rate),
            );
            return Vec::new();
        };
        let name = if unit == 's' {
            "limit-rps"
        } else {
            "limit-rpm"
        };
        let mut out = vec![(name.to_owned(), n.to_string(), vec![format!("{rp}/rate")])];
        if let Some(b) = r.burst {
            let mult = (u64::from(b)).div_ceil(n.max(1)).max(1);
            if u64::from(b) != mult * n {
                self.unsupported(format!("{rp}/burst"), format!("ingress-nginx sets the burst as a multiple of the rate: burst {b} becomes {}", mult * n));
            }
            out.push((
                "limit-burst-multiplier".into(),
                mult.to_string(),
                vec![format!("{rp}/burst")],
            ));
        }
        if !r.nodelay {
            self.unsupported(
                format!("{rp}/nodelay"),
                "ingress-nginx always applies `nodelay` to its rate limits",
            );
        }
        out
    }

    /// Site settings the ingress controller owns for every site at once.
    pub(super) fn controller_wide(&mut self, key: &str, site: &Site) {
        let sp = pointer(&["sites", key]);
        let tls = &site.tls;
        if site.tls.mode != "off" {
            let mut owned = Vec::new();
            if tls.protocols != ["TLSv1.2", "TLSv1.3"] {
                owned.push(format!("ssl-protocols \"{}\"", tls.protocols.join(" ")));
            }
            if let Some(c) = &tls.ecdh_curve {
                owned.push(format!("ssl-ecdh-curve \"{c}\""));
            }
            if let Some(t) = &tls.session_timeout {
                owned.push(format!("ssl-session-timeout \"{t}\""));
            }
            if tls.session_tickets {
                owned.push("ssl-session-tickets \"true\"".into());
            }
            if tls.stapling {
                owned.push("enable-ocsp \"true\"".into());
            }
            if !owned.is_empty() {
                self.unsupported(
                    format!("{sp}/tls"),
                    format!("TLS settings are the ingress controller's, for every site at once: set {} in its ConfigMap", owned.join(", ")),
                );
            }
            match &site.hsts {
                Some(h) if h.max_age != 31_536_000 || !h.include_subdomains || h.preload => self.unsupported(
                    format!("{sp}/hsts"),
                    format!(
                        "HSTS is set by the ingress controller for every site: set hsts-max-age \"{}\", hsts-include-subdomains \"{}\", hsts-preload \"{}\" in its ConfigMap",
                        h.max_age, h.include_subdomains, h.preload
                    ),
                ),
                None => self.unsupported(format!("{sp}/hsts"), "ingress-nginx sends HSTS by default: set hsts \"false\" in its ConfigMap to turn it off"),
                _ => {}
            }
        }
        if !site.headers.is_empty() {
            let names: Vec<&str> = site.headers.keys().map(String::as_str).collect();
            self.unsupported_security(
                format!("{sp}/headers"),
                format!(
                    "response headers ({}) need ingress-nginx snippets, which POLICIES #38 forbids: send them from the app (Django SecurityMiddleware) or the controller's add-headers ConfigMap",
                    names.join(", ")
                ),
            );
        }
        if site.gzip.is_some() {
            self.unsupported(format!("{sp}/gzip"), "gzip is the ingress controller's setting (use-gzip in its ConfigMap), for every site at once");
        }
        if site.redirect_code != 308 && site.tls.mode != "off" {
            self.unsupported(format!("{sp}/redirect-code"), format!("ingress-nginx redirects HTTP to HTTPS with 308 (http-redirect-code in its ConfigMap), not {}", site.redirect_code));
        }
        if site.server_tokens {
            self.unsupported(format!("{sp}/server-tokens"), "server tokens are the ingress controller's setting (server-tokens in its ConfigMap)");
        }
        if site.listen.http != 80 || site.listen.https != 443 {
            self.unsupported(
                format!("{sp}/listen"),
                "an Ingress serves on the controller's ports (80 and 443)",
            );
        }
    }
}
