//! Sites: nginx servers, their TLS, headers, locations and listeners.

use super::*;

impl Lower<'_> {
    pub(super) fn site(&mut self, node: &Node, model: &Model) -> Option<(String, Site)> {
        let key = node.key()?;
        let ptr = format!("/sites/{}", pointer_segment(&key));
        self.record(&ptr, node);
        let mut server_names = vec![key.clone()];
        server_names.extend(self.list(node, "aliases", &format!("{ptr}/aliases")));
        // A server name is a name: a client sends no SNI for an address (nginx then refuses
        // the handshake) and the Kubernetes API rejects an Ingress host that is one.
        for (i, name) in server_names.iter().enumerate() {
            if name.parse::<std::net::IpAddr>().is_err()
                && !name
                    .rsplit('.')
                    .next()
                    .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
            {
                continue;
            }
            let span = match i {
                0 => Some(node.value_span()),
                _ => node.child("aliases").and_then(|a| {
                    a.args
                        .iter()
                        .find(|v| v.value.as_str() == Some(name.as_str()))
                        .map(|v| v.span)
                }),
            };
            let mut d = Diagnostic::error(
                "invalid-value",
                format!("`{name}` is an address, not a server name"),
            )
            .with_help("a site is reached by name: TLS clients send no server name for an address (nginx refuses the handshake) and an Ingress host must be a DNS name; give the address a name in DNS and use that");
            if let Some(span) = span {
                d = d.with_label(span, "an IP address");
            }
            self.diags.push(d);
        }

        let web_services: Vec<&str> = model
            .services
            .iter()
            .filter(|(_, s)| s.kind == ServiceKind::Web)
            .map(|(k, _)| k.as_str())
            .collect();
        let upstream = match node.child("upstream").and_then(|u| u.args.first()) {
            Some(v) => {
                let name = v.value.to_text();
                self.record(
                    &format!("{ptr}/upstream"),
                    node.child("upstream").expect("present"),
                );
                self.check_upstream(&name, v.span, model, &web_services);
                name
            }
            None => match web_services.as_slice() {
                [one] => one.to_string(),
                _ => {
                    self.diags.push(
                        Diagnostic::error("missing-value", format!("site `{key}` has no upstream"))
                            .with_label(node.value_span(), "no `upstream`")
                            .with_help(match web_services.first() {
                                Some(w) => format!("add `upstream={w}`"),
                                None => "declare a web service (`service web preset=django-web { … }`) and add `upstream=web`".into(),
                            }),
                    );
                    String::new()
                }
            },
        };

        let tls_node = node
            .child("tls")
            .cloned()
            .unwrap_or_else(|| empty("tls", node.name_span));
        let tp = format!("{ptr}/tls");
        if node.child("tls").is_some() {
            self.record(&tp, &tls_node);
        }
        let mode = tls_node
            .args
            .first()
            .map_or_else(|| "acme".to_owned(), |v| v.value.to_text());
        let mut cert = self.string(&tls_node, "cert", &format!("{tp}/cert"));
        let mut tkey = self.string(&tls_node, "key", &format!("{tp}/key"));
        if mode == "acme" {
            cert.get_or_insert_with(|| format!("/etc/letsencrypt/live/{key}/fullchain.pem"));
            tkey.get_or_insert_with(|| format!("/etc/letsencrypt/live/{key}/privkey.pem"));
        } else if mode == "files" && (cert.is_none() || tkey.is_none()) {
            self.diags.push(
                Diagnostic::error("missing-value", "`tls files` needs `cert` and `key`")
                    .with_label(tls_node.value_span(), "certificate files not given")
                    .with_help("write `tls files cert=\"/etc/ssl/site.pem\" key=\"/etc/ssl/site.key\"`, or `tls acme`"),
            );
        }
        let tls = Tls {
            cert,
            key: tkey,
            profile: self
                .string(&tls_node, "profile", &format!("{tp}/profile"))
                .unwrap_or_else(|| "intermediate".into()),
            protocols: {
                let p = self.list(&tls_node, "protocols", &format!("{tp}/protocols"));
                if p.is_empty() {
                    vec!["TLSv1.2".into(), "TLSv1.3".into()]
                } else {
                    p
                }
            },
            ciphers: self.string(&tls_node, "ciphers", &format!("{tp}/ciphers")),
            ecdh_curve: self.string(&tls_node, "ecdh-curve", &format!("{tp}/ecdh-curve")),
            prefer_server_ciphers: self.boolean(
                &tls_node,
                "prefer-server-ciphers",
                &format!("{tp}/prefer-server-ciphers"),
                false,
            ),
            session_timeout: self.duration_text(
                &tls_node,
                "session-timeout",
                &format!("{tp}/session-timeout"),
            ),
            session_cache: self.string(&tls_node, "session-cache", &format!("{tp}/session-cache")),
            session_tickets: self.boolean(
                &tls_node,
                "session-tickets",
                &format!("{tp}/session-tickets"),
                false,
            ),
            http2: self.boolean(&tls_node, "http2", &format!("{tp}/http2"), true),
            stapling: self.boolean(&tls_node, "stapling", &format!("{tp}/stapling"), false),
            mode,
        };

        let hsts = match node.child("hsts") {
            Some(h)
                if h.args
                    .first()
                    .is_some_and(|v| v.value == Value::Bool(false)) =>
            {
                self.record(&format!("{ptr}/hsts"), h);
                None
            }
            Some(h) => {
                let hp = format!("{ptr}/hsts");
                self.record(&hp, h);
                Some(Hsts {
                    max_age: self
                        .int(h, "max-age", &format!("{hp}/max-age"))
                        .map_or(63_072_000, |v| v.max(0) as u64),
                    include_subdomains: self.boolean(
                        h,
                        "include-subdomains",
                        &format!("{hp}/include-subdomains"),
                        true,
                    ),
                    preload: self.boolean(h, "preload", &format!("{hp}/preload"), false),
                })
            }
            None => None,
        };

        let mut headers = BTreeMap::new();
        for h in node.children_named("header") {
            if let (Some(name), Some(value)) =
                (h.key(), h.args.get(1).and_then(|v| v.value.as_str()))
            {
                self.record(&format!("{ptr}/headers/{}", pointer_segment(&name)), h);
                headers.insert(name, value.to_owned());
            }
        }

        let mut rate_limits = BTreeMap::new();
        for r in node.children_named("rate-limit") {
            let Some(zone) = r.key() else { continue };
            let rp = format!("{ptr}/rate-limits/{}", pointer_segment(&zone));
            self.record(&rp, r);
            let Some(rate) = self.string(r, "rate", &format!("{rp}/rate")) else {
                self.diags.push(
                    Diagnostic::error("missing-value", format!("rate limit `{zone}` has no rate"))
                        .with_label(r.value_span(), "no `rate`")
                        .with_help("add `rate=\"10r/s\"`"),
                );
                continue;
            };
            rate_limits.insert(
                zone,
                RateLimit {
                    site_wide: false,
                    rate,
                    burst: self.uint(r, "burst", &format!("{rp}/burst")),
                    nodelay: self.boolean(r, "nodelay", &format!("{rp}/nodelay"), false),
                    size: self
                        .string(r, "size", &format!("{rp}/size"))
                        .unwrap_or_else(|| "10m".into()),
                    paths: self.list(r, "paths", &format!("{rp}/paths")),
                },
            );
        }

        let mut locations = BTreeMap::new();
        for (node_name, kind) in [
            ("location", LocationKind::Proxy),
            ("static", LocationKind::Static),
            ("media", LocationKind::Media),
            ("websocket", LocationKind::Websocket),
        ] {
            for l in node.children_named(node_name) {
                let Some(path) = l.key() else { continue };
                let lp = format!("{ptr}/locations/{}", pointer_segment(&path));
                self.record(&lp, l);
                if !path.starts_with('/') {
                    self.diags.push(
                        Diagnostic::error(
                            "type-mismatch",
                            format!("location `{path}` must start with `/`"),
                        )
                        .with_label(l.value_span(), "not a path")
                        .with_help(format!("write \"/{path}\"")),
                    );
                    continue;
                }
                if locations.contains_key(&path) {
                    self.diags.push(
                        Diagnostic::error(
                            "duplicate",
                            format!("path `{path}` is declared twice in site `{key}`"),
                        )
                        .with_label(l.value_span(), "declared again")
                        .with_help("each path prefix can have one behaviour"),
                    );
                    continue;
                }
                let root = self.string(l, "root", &format!("{lp}/root"));
                let mut kind = kind;
                if kind == LocationKind::Proxy && root.is_some() {
                    kind = LocationKind::Static;
                }
                if matches!(kind, LocationKind::Static | LocationKind::Media) && root.is_none() {
                    self.diags.push(
                        Diagnostic::error(
                            "missing-value",
                            format!("`{node_name} \"{path}\"` has no folder"),
                        )
                        .with_label(l.value_span(), "no `root`")
                        .with_help(format!(
                            "add `root=\"/var/www/{}/static/\"`",
                            model.project.name
                        )),
                    );
                }
                let from = match l.child("from").and_then(|u| u.args.first()) {
                    Some(v) => {
                        let name = v.value.to_text();
                        self.record(&format!("{lp}/from"), l.child("from").expect("present"));
                        if !model.services.contains_key(&name) {
                            let names: Vec<&str> =
                                model.services.keys().map(String::as_str).collect();
                            self.diags.push(
                                Diagnostic::error(
                                    "unknown-reference",
                                    format!("`from={name}` names no service of this environment"),
                                )
                                .with_label(v.span, "no such service")
                                .with_help(unknown_name_help(&name, "service", &names)),
                            );
                        } else if root.is_none() && kind == LocationKind::Proxy {
                            self.diags.push(
                                Diagnostic::error(
                                    "missing-value",
                                    format!("`from={name}` says whose image holds the files, but `{path}` serves no folder"),
                                )
                                .with_label(v.span, "without `root`")
                                .with_help(format!("add the folder inside `{name}`'s image: `root=\"/app/staticfiles/\"`")),
                            );
                        }
                        Some(name)
                    }
                    None => None,
                };
                let upstream = match l.child("upstream").and_then(|u| u.args.first()) {
                    Some(v) => {
                        let name = v.value.to_text();
                        self.record(
                            &format!("{lp}/upstream"),
                            l.child("upstream").expect("present"),
                        );
                        self.check_upstream(&name, v.span, model, &web_services);
                        Some(name)
                    }
                    None => None,
                };
                let rate_limit = match l.child("rate-limit").and_then(|u| u.args.first()) {
                    Some(v) => {
                        let zone = v.value.to_text();
                        if !rate_limits.contains_key(&zone) {
                            let zones: Vec<&str> = rate_limits.keys().map(String::as_str).collect();
                            self.diags.push(
                                Diagnostic::error(
                                    "unknown-reference",
                                    format!("rate limit `{zone}` is not declared in site `{key}`"),
                                )
                                .with_label(v.span, "no such zone")
                                .with_help(
                                    match unknown_name_help(&zone, "zone", &zones) {
                                        h if h.starts_with("did you mean") => h,
                                        _ => format!(
                                            "declare it: `rate-limit {zone} rate=\"10r/s\"`"
                                        ),
                                    },
                                ),
                            );
                        }
                        self.record(
                            &format!("{lp}/rate-limit"),
                            l.child("rate-limit").expect("present"),
                        );
                        Some(zone)
                    }
                    None => None,
                };
                let location = Location {
                    kind,
                    upstream,
                    root,
                    from,
                    expires: self.duration_text(l, "expires", &format!("{lp}/expires")),
                    cache_control: self.string(l, "cache-control", &format!("{lp}/cache-control")),
                    access_log: self.boolean(l, "access-log", &format!("{lp}/access-log"), true),
                    rate_limit,
                    read_timeout: self.duration_text(
                        l,
                        "read-timeout",
                        &format!("{lp}/read-timeout"),
                    ),
                    max_body_size: self.string(l, "max-body-size", &format!("{lp}/max-body-size")),
                    allow: self.list(l, "allow", &format!("{lp}/allow")),
                    websocket: kind == LocationKind::Websocket
                        || self.boolean(l, "websocket", &format!("{lp}/websocket"), false),
                };
                locations.insert(path, location);
            }
        }

        let gzip = match node.child("gzip") {
            Some(g)
                if !g
                    .args
                    .first()
                    .is_some_and(|v| v.value == Value::Bool(false)) =>
            {
                let gp = format!("{ptr}/gzip");
                self.record(&gp, g);
                Some(Gzip {
                    types: self.list(g, "types", &format!("{gp}/types")),
                    min_length: self.uint(g, "min-length", &format!("{gp}/min-length")),
                    options: self.options(g, "environment/site/gzip", &gp),
                })
            }
            _ => None,
        };
        let timeouts = match node.child("timeouts") {
            Some(t) => Timeouts {
                connect: self.duration_text(t, "connect", &format!("{ptr}/timeouts/connect")),
                send: self.duration_text(t, "send", &format!("{ptr}/timeouts/send")),
                read: self.duration_text(t, "read", &format!("{ptr}/timeouts/read")),
            },
            None => Timeouts::default(),
        };
        let listen_node = node
            .child("listen")
            .cloned()
            .unwrap_or_else(|| empty("listen", node.name_span));
        // A zone applies to the whole site unless it lists paths or a location names it.
        for (zone, limit) in rate_limits.iter_mut() {
            limit.site_wide = limit.paths.is_empty()
                && !locations
                    .values()
                    .any(|l: &Location| l.rate_limit.as_deref() == Some(zone.as_str()));
        }
        let site = Site {
            preset: node
                .child("preset")
                .and_then(|p| p.args.first())
                .map(|v| v.value.to_text())
                .or_else(|| Some("nginx-site".into())),
            server_names,
            upstream,
            tls,
            hsts,
            headers,
            locations,
            rate_limits,
            max_body_size: self.string(node, "max-body-size", &format!("{ptr}/max-body-size")),
            gzip,
            timeouts,
            deny_hidden: self.boolean(node, "deny-hidden", &format!("{ptr}/deny-hidden"), true),
            redirect_code: self
                .string(node, "redirect-code", &format!("{ptr}/redirect-code"))
                .and_then(|s| s.parse().ok())
                .unwrap_or(308),
            acme_root: self
                .string(node, "acme-root", &format!("{ptr}/acme-root"))
                .unwrap_or_else(|| "/var/www/letsencrypt".into()),
            server_tokens: self.boolean(
                node,
                "server-tokens",
                &format!("{ptr}/server-tokens"),
                false,
            ),
            listen: Listen {
                http: self
                    .uint(&listen_node, "http", &format!("{ptr}/listen/http"))
                    .map_or(80, |p| p as u16),
                https: self
                    .uint(&listen_node, "https", &format!("{ptr}/listen/https"))
                    .map_or(443, |p| p as u16),
                ipv6: self.boolean(&listen_node, "ipv6", &format!("{ptr}/listen/ipv6"), true),
            },
        };
        Some((key, site))
    }

    pub(super) fn check_upstream(
        &mut self,
        name: &str,
        span: crate::source::Span,
        model: &Model,
        web: &[&str],
    ) {
        match model.services.get(name) {
            Some(s) if s.kind == ServiceKind::Web => {}
            Some(_) => self.diags.push(
                Diagnostic::error(
                    "unknown-reference",
                    format!("upstream `{name}` is not a web service"),
                )
                .with_label(span, "this service serves no HTTP")
                .with_help(match web.first() {
                    Some(w) => format!("point it at a web service such as `{w}`"),
                    None => "declare a web service to proxy to".into(),
                }),
            ),
            None => self.diags.push(
                Diagnostic::error(
                    "unknown-reference",
                    format!("upstream `{name}` is not a declared service"),
                )
                .with_label(span, "no such service")
                .with_help(unknown_name_help(name, "web service", web)),
            ),
        }
    }

    /// The spans to blame for a site's `listen` ports: the spec's `http`/`https` lines when it
    /// sets them, else the site's name.
    pub(super) fn listen_spans(&self, root: &Node, key: &str) -> [crate::source::Span; 2] {
        let sources = &self.project.sources;
        let Some(site) = root
            .children_named("site")
            .find(|n| n.key().as_deref() == Some(key))
        else {
            return [root.name_span; 2];
        };
        ["http", "https"].map(
            |proto| match site.child("listen").and_then(|l| l.child(proto)) {
                Some(p)
                    if sources.get(p.value_span().file).origin
                        == crate::source::Origin::Project =>
                {
                    p.value_span()
                }
                _ => site.value_span(),
            },
        )
    }

    /// One port speaks one protocol: nginx cannot serve plain HTTP and TLS on the same
    /// socket (`nginx -t`: "a duplicate default server", or a handshake that never comes),
    /// in any target that runs it.
    pub(super) fn check_site_listeners(&mut self, root: &Node, model: &Model) {
        // port -> (protocol, site, span) of its first claim
        let mut taken: BTreeMap<u16, (&str, &str, crate::source::Span)> = BTreeMap::new();
        for (key, site) in &model.sites {
            let [http_span, https_span] = self.listen_spans(root, key);
            let mut claims = vec![("plain HTTP", site.listen.http, http_span)];
            if site.tls.mode != "off" {
                claims.push(("TLS", site.listen.https, https_span));
            }
            for (proto, port, span) in claims {
                match taken.get(&port) {
                    Some(&(other, owner, first)) if other != proto => {
                        let message = if owner == key.as_str() {
                            format!(
                                "site `{key}` listens on port {port} for both {other} and {proto}"
                            )
                        } else {
                            format!(
                                "port {port} would carry {other} for site `{owner}` and {proto} for site `{key}`"
                            )
                        };
                        self.diags.push(
                            Diagnostic::error("port-collision", message)
                            .with_label(span, format!("{proto} on {port}"))
                            .with_label(first, format!("{other} on {port}"))
                            .with_help("one port speaks one protocol: give the TLS and the plain HTTP listeners different ports (`listen { http 80; https 443; }`)")
                            .with_note("nginx refuses the configuration: a port can be a TLS listener or a plain one, not both"),
                        );
                    }
                    Some(_) => {}
                    None => {
                        taken.insert(port, (proto, key, span));
                    }
                }
            }
        }
    }
}
