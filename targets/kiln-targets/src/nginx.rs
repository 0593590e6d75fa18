//! The `nginx` target: a complete `nginx.conf`, one `sites/<host>.conf` per site
//! and one `snippets/security-headers-<host>.conf` per site.
//!
//! Two flavours read the same model: [`Flavor::Host`] for nginx on a Linux host
//! (upstreams on loopback, on the ports the systemd units listen on) and
//! [`Flavor::Container`] for the compose deployment (upstreams by service name, looked
//! up per request through Docker's DNS at 127.0.0.11: a `map` constant in `proxy_pass`
//! instead of an `upstream` block, which would resolve the name once at start and keep
//! proxying to a recreated container's old address; the price is no upstream keepalive).
//!
//! Invariants, by construction:
//! - HSTS and every site header carry `always` and live in the site's snippet, which is
//!   included in the TLS server *and* in every location that has an `add_header` of its
//!   own: nginx drops inherited `add_header`s in such a block (POLICIES #22). HSTS is
//!   never sent over plain HTTP.
//! - An `alias` location and its folder both end with `/` (POLICIES #23); `root` is used
//!   where the folder already ends with the location path.
//! - `limit_req` and `proxy_set_header` are inherited all-or-nothing too: a location that
//!   sets any repeats the server's.
//! - Only directives that exist in `versions.nginx` (`listen … http2` before 1.25.1,
//!   `http2 on` from it; `ssl_session_tickets off` only before 1.23.2, POLICIES #21).
//! - Includes are relative (`sites/*.conf`, `snippets/…`): nginx resolves them against
//!   the directory of the main config file.

use std::collections::{BTreeMap, BTreeSet};

use kiln_core::Artifact;
use kiln_core::model::{
    Location, LocationKind, Model, RateLimit, ServiceKind, Site, Target, Versions, pointer,
    pointer_segment,
};

use crate::{Output, Unsupported, Writer, header_text};

/// Where the generated nginx (or pgbouncer) configuration runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// On a Linux host next to the systemd units: upstreams on loopback.
    Host,
    /// Inside the compose deployment: upstreams by container DNS name (`web:8000`).
    Container,
}

/// Docker's embedded DNS server, in every container on a user-defined network.
const DOCKER_DNS: &str = "127.0.0.11";

/// The host flavour, under `nginx/`.
pub fn emit(model: &Model) -> Output {
    let mut out = render_output(model, Flavor::Host);
    for a in &mut out.artifacts {
        a.path = format!("nginx/{}", a.path);
    }
    out
}

/// The files of one flavour, paths relative to the nginx folder (`nginx.conf`,
/// `sites/<host>.conf`, `snippets/security-headers-<host>.conf`).
pub fn render(model: &Model, flavor: Flavor) -> Vec<Artifact> {
    render_output(model, flavor).artifacts
}

/// Like [`render`], with what the spec asks for that nginx cannot do.
pub fn render_output(model: &Model, flavor: Flavor) -> Output {
    let mut cx = Cx {
        model,
        flavor,
        unsupported: Vec::new(),
        zones: zone_names(model),
        claimed: BTreeSet::new(),
    };
    if model.sites.is_empty() {
        return Output::default();
    }
    let mut artifacts = vec![cx.main_conf()];
    for (key, site) in &model.sites {
        artifacts.extend(cx.site(key, site));
    }
    artifacts.sort_by(|a, b| a.path.cmp(&b.path));
    Output {
        artifacts,
        unsupported: cx.unsupported,
        ..Default::default()
    }
}

/// The TLS-default curve list's post-quantum hybrid, which needs OpenSSL 3.5.
const MLKEM: &str = "X25519MLKEM768";

/// `gzip_types` when the spec names none (`text/html` is always compressed).
const DEFAULT_GZIP_TYPES: &[&str] = &[
    "text/plain",
    "text/css",
    "text/xml",
    "text/javascript",
    "application/javascript",
    "application/json",
    "application/xml",
    "application/rss+xml",
    "application/atom+xml",
    "image/svg+xml",
];

/// Read timeout of a WebSocket location when the spec gives none: long-lived connections.
const WEBSOCKET_READ_TIMEOUT: &str = "3600s";

struct Cx<'a> {
    model: &'a Model,
    flavor: Flavor,
    unsupported: Vec<Unsupported>,
    /// (site, zone) → the `limit_req_zone` name: the zone's own name unless two sites use it.
    zones: BTreeMap<(String, String), String>,
    /// Server names already served by an earlier site (nginx warns on a second one).
    claimed: BTreeSet<String>,
}

/// A config file under construction: indentation plus provenance per line.
struct Conf {
    w: Writer,
    depth: usize,
}

impl Conf {
    fn new(model: &Model, about: &str) -> Conf {
        let mut w = Writer::new();
        w.line(format!("# {}", header_text(model)), &[]);
        w.line(format!("# {about}"), &[]);
        Conf { w, depth: 0 }
    }

    fn line(&mut self, text: impl AsRef<str>, from: &[&str]) {
        self.w.line(
            format!("{}{}", "    ".repeat(self.depth), text.as_ref()),
            from,
        );
    }

    fn open(&mut self, head: impl AsRef<str>, from: &[&str]) {
        self.line(format!("{} {{", head.as_ref()), from);
        self.depth += 1;
    }

    fn close(&mut self) {
        self.depth -= 1;
        self.line("}", &[]);
    }

    fn blank(&mut self) {
        self.w.blank();
    }

    fn finish(self, path: String) -> Artifact {
        debug_assert_eq!(self.depth, 0, "unbalanced braces in {path}");
        self.w.finish(path)
    }
}

/// The variable holding the Content-Security-Policy nginx adds for site `key`.
fn csp_variable(key: &str) -> String {
    format!("kiln_csp_{}", ident(key))
}

/// `worker_connections` of every configuration.
const WORKER_CONNECTIONS: u32 = 1024;

/// The port of the static-file sidecar of a pod (`static … from=SERVICE` on Kubernetes).
pub const STATIC_SIDECAR_PORT: u16 = 8080;

/// The `nginx.conf` of the sidecar that serves `service`'s static files in its pod, from
/// the folder its init container copied out of the image; `None` when no location serves
/// files from that service's image. It runs as the pod's non-root user on a read-only root:
/// every file it writes is under `/tmp`.
pub fn static_sidecar(model: &Model, service: &str) -> Option<Artifact> {
    let mut served: BTreeMap<&str, (&Location, String)> = BTreeMap::new();
    for p in crate::pod_served(model, service) {
        served.entry(p.path).or_insert((p.location, p.pointer));
    }
    if served.is_empty() {
        return None;
    }
    let mut c = Conf::new(
        model,
        &format!(
            "the files of `{service}`'s pod (copied from its image, or its volumes), served to the ingress controller"
        ),
    );
    c.line("worker_processes 1;", &[]);
    c.line("pid /tmp/nginx.pid;", &[]);
    c.line("error_log stderr warn;", &[]);
    c.blank();
    c.open("events", &[]);
    c.line(format!("worker_connections {WORKER_CONNECTIONS};"), &[]);
    c.close();
    c.blank();
    c.open("http", &[]);
    c.line("include /etc/nginx/mime.types;", &[]);
    c.line("default_type application/octet-stream;", &[]);
    c.line("server_tokens off;", &[]);
    c.line("sendfile on;", &[]);
    c.line("access_log /dev/stdout;", &[]);
    for t in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        c.line(format!("{t}_temp_path /tmp/{t};"), &[]);
    }
    c.blank();
    c.open("server", &[]);
    c.line(format!("listen {STATIC_SIDECAR_PORT};"), &[]);
    c.line("add_header X-Content-Type-Options nosniff always;", &[]);
    for (path, (loc, lp)) in &served {
        let root = loc.root.as_deref().unwrap_or("/");
        let lpath = if path.ends_with('/') {
            path.to_string()
        } else {
            format!("{path}/")
        };
        let dir = if root.ends_with('/') {
            root.to_owned()
        } else {
            format!("{root}/")
        };
        c.blank();
        c.open(format!("location {}", arg(&lpath)), &[lp]);
        c.line(
            format!("alias {};", arg(&dir)),
            &[&format!("{lp}/root"), &format!("{lp}/from")],
        );
        if let Some(cc) = &loc.cache_control {
            c.line(
                format!("add_header Cache-Control {};", quote(cc)),
                &[&format!("{lp}/cache-control")],
            );
            c.line("add_header X-Content-Type-Options nosniff always;", &[]);
        }
        if let Some(e) = &loc.expires {
            c.line(format!("expires {};", arg(e)), &[&format!("{lp}/expires")]);
        }
        if !loc.access_log {
            c.line("access_log off;", &[&format!("{lp}/access-log")]);
        }
        c.line("try_files $uri =404;", &[]);
        c.close();
    }
    c.blank();
    c.open("location /", &[]);
    c.line("return 404;", &[]);
    c.close();
    c.close();
    c.close();
    Some(c.finish("nginx.conf".into()))
}

/// An nginx argument: bare when it cannot be misread, double-quoted otherwise.
fn arg(s: &str) -> String {
    let bare = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/:@+=,~-*!%[]()".contains(c));
    if bare { s.to_owned() } else { quote(s) }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Letters, digits and `_` only: for upstream and zone names.
fn ident(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// A site key made safe as a file name (site keys are host names; this is a backstop).
fn file_name(s: &str) -> String {
    let name: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.starts_with('.') || name.is_empty() {
        format!("_{name}")
    } else {
        name
    }
}

fn snippet_path(site: &str) -> String {
    format!("snippets/security-headers-{}.conf", file_name(site))
}

fn upstream_name(site: &str, service: &str) -> String {
    format!("{}_{}", ident(service), ident(site))
}

/// The variable holding `service`'s address in the container flavour (without the `$`).
fn upstream_variable(site: &str, service: &str) -> String {
    format!("kiln_upstream_{}", upstream_name(site, service))
}

/// The `*_hash_bucket_size` a key of `len` bytes needs, when nginx's default (64) is too
/// small. nginx fits a key in a bucket of `sizeof(void *) + align(len + 2, sizeof(void *))`
/// plus a closing pointer (ngx_hash_init), and rounds the size up to its cache line.
fn bucket_size(len: usize) -> Option<usize> {
    let need = 8 + (len + 2).div_ceil(8) * 8 + 8;
    (need > 64).then(|| need.div_ceil(64) * 64)
}

/// Every `limit_req_zone` name, unique over the whole http block.
fn zone_names(model: &Model) -> BTreeMap<(String, String), String> {
    let mut users: BTreeMap<&str, usize> = BTreeMap::new();
    for site in model.sites.values() {
        for zone in site.rate_limits.keys() {
            *users.entry(zone.as_str()).or_default() += 1;
        }
    }
    let mut out = BTreeMap::new();
    for (key, site) in &model.sites {
        for zone in site.rate_limits.keys() {
            let name = if users[zone.as_str()] > 1 {
                format!("{}_{}", ident(key), ident(zone))
            } else {
                ident(zone)
            };
            out.insert((key.clone(), zone.clone()), name);
        }
    }
    out
}

fn tls_on(site: &Site) -> bool {
    site.tls.mode != "off"
}

/// What one `location` block does, after merging the spec's locations with the
/// site's default `/` and the rate limits' paths.
struct Loc<'a> {
    spec: Option<&'a Location>,
    /// Zones applied here (not counting the server-level ones).
    zones: Vec<String>,
}

impl Cx<'_> {
    fn unsupported(&mut self, pointer: String, message: impl Into<String>) {
        self.unsupported.push(Unsupported {
            target: Target::Nginx,
            pointer,
            message: message.into(),
            security: false,
        });
    }

    fn http2_via_listen(&self) -> bool {
        !Versions::at_least(&self.model.versions.nginx, "1.25.1")
    }

    /// The longest server name and the longest variable name this configuration holds.
    fn longest_names(&self) -> (usize, usize) {
        let model = self.model;
        let mut name = 0;
        let mut variable = 0;
        for (key, site) in &model.sites {
            for n in &site.server_names {
                name = name.max(n.len());
            }
            variable = variable.max(csp_variable(key).len());
            if self.flavor == Flavor::Container {
                let services = std::iter::once(&site.upstream)
                    .chain(site.locations.values().filter_map(|l| l.upstream.as_ref()));
                for svc in services {
                    variable = variable.max(upstream_variable(key, svc).len());
                }
            }
        }
        (name, variable)
    }

    fn main_conf(&mut self) -> Artifact {
        let model = self.model;
        let mut c = Conf::new(
            model,
            &format!(
                "main configuration for nginx {}: sites in sites/*.conf, their security headers in snippets/",
                model.versions.nginx
            ),
        );
        let (user, pid) = match self.flavor {
            Flavor::Host => ("www-data", "/run/nginx.pid"),
            Flavor::Container => ("nginx", "/var/run/nginx.pid"),
        };
        c.blank();
        c.line(format!("user {user};"), &[]);
        c.line("worker_processes auto;", &[]);
        c.line(format!("pid {pid};"), &[]);
        c.line("error_log /var/log/nginx/error.log warn;", &[]);
        c.line(
            "# Each proxied request holds two descriptors (client, upstream): twice the connections.",
            &[],
        );
        c.line(
            format!("worker_rlimit_nofile {};", 2 * WORKER_CONNECTIONS),
            &[],
        );
        c.blank();
        c.open("events", &[]);
        c.line(format!("worker_connections {WORKER_CONNECTIONS};"), &[]);
        c.close();
        c.blank();
        c.open("http", &[]);
        c.line("include /etc/nginx/mime.types;", &[]);
        c.line("default_type application/octet-stream;", &[]);
        c.line("sendfile on;", &[]);
        c.line("tcp_nopush on;", &[]);
        c.line("keepalive_timeout 65s;", &[]);
        c.line("types_hash_max_size 2048;", &[]);
        // Long names need larger hash buckets, or nginx refuses to start ("could not build
        // server_names_hash, you should increase server_names_hash_bucket_size").
        let (longest_name, longest_variable) = self.longest_names();
        if let Some(size) = bucket_size(longest_name) {
            c.line(format!("server_names_hash_bucket_size {size};"), &[]);
        }
        if let Some(size) = bucket_size(longest_variable) {
            c.line(format!("variables_hash_bucket_size {size};"), &[]);
        }
        c.line("server_tokens off;", &[]);
        c.line("access_log /var/log/nginx/access.log;", &[]);
        c.blank();
        c.line(
            "# WebSocket upgrades: `Connection: upgrade` when the client asked for one, else no",
            &[],
        );
        c.line("# Connection header at all, so the upstream keepalive pool still serves plain requests.", &[]);
        c.open("map $http_upgrade $connection_upgrade", &[]);
        c.line("default upgrade;", &[]);
        c.line("'' \"\";", &[]);
        c.close();
        if self.flavor == Flavor::Container {
            c.blank();
            c.line("# Service names are looked up at request time through Docker's embedded DNS, not once", &[]);
            c.line("# at start: a recreated or restarted container gets a new address, and nginx follows it", &[]);
            c.line(
                "# within `valid` instead of proxying to the old one until it is restarted itself.",
                &[],
            );
            c.line(format!("resolver {DOCKER_DNS} valid=10s ipv6=off;"), &[]);
            c.line("resolver_timeout 5s;", &[]);
        }

        let mut zone_lines = Vec::new();
        for (key, site) in &model.sites {
            for (zone, rl) in &site.rate_limits {
                let rp = format!(
                    "{}/rate-limits/{}",
                    pointer(&["sites", key]),
                    pointer_segment(zone)
                );
                let name = &self.zones[&(key.clone(), zone.clone())];
                zone_lines.push((
                    format!(
                        "limit_req_zone $binary_remote_addr zone={name}:{} rate={};",
                        arg(&rl.size),
                        arg(&rl.rate)
                    ),
                    rp,
                ));
            }
        }
        if !zone_lines.is_empty() {
            c.blank();
            c.line(
                "# Rate limits of every site (zones live at http level).",
                &[],
            );
            c.line("limit_req_status 429;", &[]);
            for (line, rp) in &zone_lines {
                c.line(
                    line,
                    &[rp.as_str(), &format!("{rp}/rate"), &format!("{rp}/size")],
                );
            }
        }

        // Catch-all servers on every port a site listens on.
        let mut http_ports: BTreeMap<u16, (bool, Vec<String>)> = BTreeMap::new();
        let mut https_ports: BTreeMap<u16, (bool, bool, Vec<String>)> = BTreeMap::new();
        for (key, site) in &model.sites {
            let sp = pointer(&["sites", key]);
            let e = http_ports.entry(site.listen.http).or_default();
            e.0 |= site.listen.ipv6;
            e.1.push(format!("{sp}/listen/http"));
            if tls_on(site) {
                let e = https_ports.entry(site.listen.https).or_default();
                e.0 |= site.listen.ipv6;
                e.1 |= site.tls.http2;
                e.2.push(format!("{sp}/listen/https"));
            }
        }
        c.blank();
        c.line("# Unknown host names: close the connection (444) on HTTP, refuse the TLS handshake on HTTPS.", &[]);
        for (port, (ipv6, from)) in &http_ports {
            let from: Vec<&str> = from.iter().map(String::as_str).collect();
            c.open("server", &[]);
            c.line(format!("listen {port} default_server;"), &from);
            if *ipv6 {
                c.line(format!("listen [::]:{port} default_server;"), &from);
            }
            c.line("server_name _;", &[]);
            c.line("return 444;", &[]);
            c.close();
        }
        if !https_ports.is_empty() && !Versions::at_least(&model.versions.nginx, "1.19.4") {
            self.unsupported(
                "/versions/nginx".into(),
                format!("nginx {} has no `ssl_reject_handshake` (1.19.4+): the catch-all TLS server cannot refuse unknown host names without a certificate", model.versions.nginx),
            );
        }
        for (port, (ipv6, http2, from)) in &https_ports {
            let from: Vec<&str> = from.iter().map(String::as_str).collect();
            let h2 = if *http2 && self.http2_via_listen() {
                " http2"
            } else {
                ""
            };
            c.open("server", &[]);
            c.line(format!("listen {port} ssl{h2} default_server;"), &from);
            if *ipv6 {
                c.line(format!("listen [::]:{port} ssl{h2} default_server;"), &from);
            }
            c.line("server_name _;", &[]);
            c.line("ssl_reject_handshake on;", &[]);
            c.line(
                "# A request that reaches it on a connection opened for a known name (HTTP/2",
                &[],
            );
            c.line(
                "# reuses connections across names a certificate covers) is misdirected.",
                &[],
            );
            c.line("return 421;", &[]);
            c.close();
        }
        c.blank();
        c.line("include sites/*.conf;", &["/sites"]);
        c.close();
        c.finish("nginx.conf".into())
    }

    fn site(&mut self, key: &str, site: &Site) -> Vec<Artifact> {
        let model = self.model;
        let sp = pointer(&["sites", key]);
        if site.upstream.is_empty() || !model.services.contains_key(&site.upstream) {
            self.unsupported(
                format!("{sp}/upstream"),
                format!(
                    "site `{key}` has no web service to proxy to: no nginx configuration for it"
                ),
            );
            return Vec::new();
        }
        let tls = tls_on(site);
        if tls && (site.tls.cert.is_none() || site.tls.key.is_none()) {
            self.unsupported(
                format!("{sp}/tls"),
                format!("site `{key}` has no certificate and key: no nginx configuration for it"),
            );
            return Vec::new();
        }

        // The snippet: HSTS and every header, `always`.
        let mut snippet = Conf::new(
            model,
            &format!(
                "security headers of {key}: included in its server and in every location with its own add_header"
            ),
        );
        snippet.blank();
        if let Some(hsts) = &site.hsts {
            if tls {
                snippet.line(
                    format!(
                        "add_header Strict-Transport-Security {} always;",
                        quote(&hsts.header_value())
                    ),
                    &[
                        &format!("{sp}/hsts"),
                        &format!("{sp}/hsts/max-age"),
                        &format!("{sp}/hsts/include-subdomains"),
                        &format!("{sp}/hsts/preload"),
                    ],
                );
            } else {
                self.unsupported(
                    format!("{sp}/hsts"),
                    format!("site `{key}` has `tls off`: HSTS is never sent over plain HTTP"),
                );
            }
        }
        let mut csp: Option<(String, String)> = None;
        for (name, value) in &site.headers {
            let hp = format!("{sp}/headers/{}", pointer_segment(name));
            let name_ok = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c));
            if !name_ok {
                self.unsupported(hp, format!("`{name}` is not a valid HTTP header name"));
                continue;
            }
            if value.contains('$') || value.chars().any(|c| c.is_control()) {
                self.unsupported(hp, format!("the value of header `{name}` holds `$` or a control character, which nginx would read as a variable or reject"));
                continue;
            }
            if name.eq_ignore_ascii_case("Strict-Transport-Security") && site.hsts.is_some() {
                self.unsupported(
                    hp,
                    "Strict-Transport-Security is set by `hsts`; this header would send it twice",
                );
                continue;
            }
            if name.eq_ignore_ascii_case("Content-Security-Policy") {
                // The app's own policy (nonces, hashes of its inline scripts) wins when it
                // sends one; the site's is the fallback (see the map in the site's file).
                csp = Some((value.clone(), hp.clone()));
                snippet.line(
                    format!("add_header {name} ${} always;", csp_variable(key)),
                    &[&hp],
                );
                continue;
            }
            snippet.line(
                format!("add_header {name} {} always;", quote(value)),
                &[&hp],
            );
        }
        let snippet_file = snippet_path(key);

        // Upstream blocks: the site's service and every location's.
        let mut services: BTreeSet<&str> = BTreeSet::from([site.upstream.as_str()]);
        for (path, loc) in &site.locations {
            if let Some(u) = &loc.upstream {
                if model.services.contains_key(u) {
                    services.insert(u.as_str());
                } else {
                    self.unsupported(
                        format!("{sp}/locations/{}/upstream", pointer_segment(path)),
                        format!("upstream `{u}` is not a service"),
                    );
                }
            }
        }
        let mut c = Conf::new(model, &format!("site {key}"));
        if let Some((value, hp)) = &csp {
            c.blank();
            c.line(
                "# Content-Security-Policy: the app's own when it sends one (it knows the nonces and",
                &[],
            );
            c.line(
                "# hashes of its inline scripts), else the site's. Two policies would both apply.",
                &[],
            );
            c.open(
                format!(
                    "map $upstream_http_content_security_policy ${}",
                    csp_variable(key)
                ),
                &[hp],
            );
            c.line(format!("\"\" {};", quote(value)), &[hp]);
            c.line("default \"\";", &[]);
            c.close();
        }
        let ports = crate::systemd::host_ports(model);
        let mut upstreams: BTreeMap<String, String> = BTreeMap::new();
        for svc in services {
            let service = &model.services[svc];
            let svp = pointer(&["services", svc]);
            let Some(port) = service.port else {
                self.unsupported(
                    format!("{svp}/port"),
                    format!("service `{svc}` has no port to proxy to"),
                );
                continue;
            };
            if service.kind != ServiceKind::Web {
                self.unsupported(svp.clone(), format!("service `{svc}` is not a web service"));
            }
            let name = upstream_name(key, svc);
            c.blank();
            match self.flavor {
                Flavor::Host => {
                    c.open(format!("upstream {name}"), &[&svp]);
                    let list = ports.get(svc).cloned().unwrap_or_else(|| vec![port]);
                    for p in list {
                        c.line(
                            format!("server 127.0.0.1:{p};"),
                            &[&format!("{svp}/port"), &format!("{svp}/replicas")],
                        );
                    }
                    c.line("keepalive 32;", &[]);
                    c.close();
                    upstreams.insert(svc.to_owned(), name);
                }
                Flavor::Container => {
                    // A variable makes proxy_pass resolve the name per request (the
                    // `resolver` above); an `upstream` block would resolve it once.
                    c.line(
                        format!(
                            "# `{svc}` by name, resolved per request (every replica's address)."
                        ),
                        &[],
                    );
                    let variable = upstream_variable(key, svc);
                    c.open(format!("map $host ${variable}"), &[&svp]);
                    let target = match model.services.get(svc).and_then(|s| s.balancer.as_ref()) {
                        Some(_) => crate::haproxy::lb_name(svc),
                        None => model.container_host(svc),
                    };
                    c.line(
                        format!("default \"{target}:{port}\";"),
                        &[&svp, &format!("{svp}/port"), &format!("{svp}/balancer")],
                    );
                    c.close();
                    upstreams.insert(svc.to_owned(), format!("${variable}"));
                }
            }
        }
        let Some(default_upstream) = upstreams.get(&site.upstream).cloned() else {
            return Vec::new();
        };

        let mut names: Vec<&str> = Vec::new();
        for n in &site.server_names {
            if self.claimed.insert(n.to_ascii_lowercase()) {
                names.push(n);
            } else if !names.contains(&n.as_str()) {
                self.unsupported(
                    format!("{sp}/aliases"),
                    format!(
                        "server name `{n}` is already served by another site: left out of `{key}`"
                    ),
                );
            }
        }
        if names.is_empty() {
            return Vec::new();
        }
        let server_name = format!(
            "server_name {};",
            names.iter().map(|n| arg(n)).collect::<Vec<_>>().join(" ")
        );
        let names_from = [sp.as_str(), &format!("{sp}/aliases")];

        // Port 80: ACME challenges, and the redirect to HTTPS (or the whole site with `tls off`).
        c.blank();
        c.open("server", &[&sp]);
        let lp = format!("{sp}/listen/http");
        c.line(format!("listen {};", site.listen.http), &[&lp]);
        if site.listen.ipv6 {
            c.line(
                format!("listen [::]:{};", site.listen.http),
                &[&lp, &format!("{sp}/listen/ipv6")],
            );
        }
        c.line(&server_name, &names_from);
        if site.server_tokens {
            c.line("server_tokens on;", &[&format!("{sp}/server-tokens")]);
        }
        c.blank();
        let ap = format!("{sp}/acme-root");
        c.open("location ^~ /.well-known/acme-challenge/", &[&ap]);
        c.line(format!("root {};", arg(&site.acme_root)), &[&ap]);
        c.line("default_type text/plain;", &[]);
        c.line("try_files $uri =404;", &[]);
        c.close();
        if tls {
            c.blank();
            let port = if site.listen.https == 443 {
                String::new()
            } else {
                format!(":{}", site.listen.https)
            };
            c.open("location /", &[]);
            c.line(
                format!(
                    "return {} https://$host{port}$request_uri;",
                    site.redirect_code
                ),
                &[
                    &format!("{sp}/redirect-code"),
                    &format!("{sp}/listen/https"),
                ],
            );
            c.close();
            c.close();

            c.blank();
            c.open("server", &[&sp]);
            let hp = format!("{sp}/listen/https");
            let h2p = format!("{sp}/tls/http2");
            let h2 = if site.tls.http2 && self.http2_via_listen() {
                " http2"
            } else {
                ""
            };
            c.line(
                format!("listen {} ssl{h2};", site.listen.https),
                &[&hp, &h2p],
            );
            if site.listen.ipv6 {
                c.line(
                    format!("listen [::]:{} ssl{h2};", site.listen.https),
                    &[&hp, &h2p, &format!("{sp}/listen/ipv6")],
                );
            }
            if site.tls.http2 && !self.http2_via_listen() {
                c.line("http2 on;", &[&h2p]);
            }
            c.line(&server_name, &names_from);
            if site.server_tokens {
                c.line("server_tokens on;", &[&format!("{sp}/server-tokens")]);
            }
            self.tls(&mut c, key, site);
        }
        c.blank();
        c.line(
            format!("include {snippet_file};"),
            &[&format!("{sp}/headers"), &format!("{sp}/hsts")],
        );
        // The headers nginx sends, the upstream's copy hidden: a response carrying two
        // different HSTS or CSP values is obeyed by its first (the app's), not kiln's.
        let mut hidden: Vec<(String, String)> = Vec::new();
        if site.hsts.is_some() && tls {
            hidden.push(("Strict-Transport-Security".into(), format!("{sp}/hsts")));
        }
        for name in site.headers.keys() {
            if name.eq_ignore_ascii_case("Content-Security-Policy") {
                continue; // the app's wins (the map above)
            }
            if !hidden.iter().any(|(h, _)| h.eq_ignore_ascii_case(name)) {
                hidden.push((
                    name.clone(),
                    format!("{sp}/headers/{}", pointer_segment(name)),
                ));
            }
        }
        if !hidden.is_empty() {
            c.line(
                "# The upstream's own copy of each header set here is dropped: one value reaches the client.",
                &[],
            );
            for (name, from) in &hidden {
                c.line(format!("proxy_hide_header {name};"), &[from]);
            }
        }
        self.server_settings(&mut c, key, site);
        self.locations(
            &mut c,
            key,
            site,
            &upstreams,
            &default_upstream,
            &snippet_file,
        );
        c.close();

        vec![
            c.finish(format!("sites/{}.conf", file_name(key))),
            snippet.finish(snippet_file),
        ]
    }

    fn tls(&mut self, c: &mut Conf, key: &str, site: &Site) {
        let model = self.model;
        let tp = format!("{}/tls", pointer(&["sites", key]));
        let t = &site.tls;
        c.blank();
        if let (Some(cert), Some(k)) = (&t.cert, &t.key) {
            if t.mode == "acme" {
                let names = site.server_names.join(" -d ");
                let host = match self.flavor {
                    Flavor::Host => "this host",
                    Flavor::Container => "the Docker host (mounted read-only)",
                };
                c.line(
                    format!("# tls acme: certbot on {host} obtains and renews this certificate, not kiln (docs/tls.md):"),
                    &[&tp],
                );
                c.line(
                    format!("# first `certbot certonly --standalone -d {names}` (nginx stopped), then renewals"),
                    &[&tp],
                );
                c.line(
                    format!(
                        "# through the webroot {} that port {} serves, and a reload.",
                        site.acme_root, site.listen.http
                    ),
                    &[&tp],
                );
            }
            c.line(
                format!("ssl_certificate {};", arg(cert)),
                &[&format!("{tp}/cert"), &tp],
            );
            c.line(
                format!("ssl_certificate_key {};", arg(k)),
                &[&format!("{tp}/key"), &tp],
            );
        }
        let protocols = t.protocols.join(" ");
        c.line(
            format!("ssl_protocols {protocols};"),
            &[&format!("{tp}/protocols"), &format!("{tp}/profile")],
        );
        if let Some(ciphers) = &t.ciphers {
            c.line(
                format!("ssl_ciphers {};", arg(ciphers)),
                &[&format!("{tp}/ciphers")],
            );
        }
        c.line(
            format!(
                "ssl_prefer_server_ciphers {};",
                if t.prefer_server_ciphers { "on" } else { "off" }
            ),
            &[&format!("{tp}/prefer-server-ciphers")],
        );
        if let Some(curves) = &t.ecdh_curve {
            let cp = format!("{tp}/ecdh-curve");
            let mut list: Vec<&str> = curves.split(':').filter(|s| !s.is_empty()).collect();
            if !Versions::at_least(&model.versions.openssl, "3.5") && list.contains(&MLKEM) {
                list.retain(|s| *s != MLKEM);
                self.unsupported(cp.clone(), format!("{MLKEM} needs OpenSSL 3.5 or later (versions.openssl is {}): left out of ssl_ecdh_curve", model.versions.openssl));
            }
            if !list.is_empty() {
                c.line(
                    format!("ssl_ecdh_curve {};", arg(&list.join(":"))),
                    &[&cp, "/versions/openssl"],
                );
            }
        }
        if let Some(v) = &t.session_timeout {
            c.line(
                format!("ssl_session_timeout {};", arg(v)),
                &[&format!("{tp}/session-timeout")],
            );
        }
        if let Some(v) = &t.session_cache {
            c.line(
                format!("ssl_session_cache {};", arg(v)),
                &[&format!("{tp}/session-cache")],
            );
        }
        // nginx 1.23.2 rotates ticket keys itself; before that, tickets weaken forward secrecy.
        if !t.session_tickets && !Versions::at_least(&model.versions.nginx, "1.23.2") {
            c.line(
                "ssl_session_tickets off;",
                &[&format!("{tp}/session-tickets"), "/versions/nginx"],
            );
        }
        if t.stapling {
            c.line("ssl_stapling on;", &[&format!("{tp}/stapling")]);
            c.line("ssl_stapling_verify on;", &[&format!("{tp}/stapling")]);
        }
    }

    /// Settings of the serving server block, inherited by its locations.
    fn server_settings(&mut self, c: &mut Conf, key: &str, site: &Site) {
        let sp = pointer(&["sites", key]);
        let mut lines: Vec<(String, String)> = Vec::new();
        if let Some(size) = &site.max_body_size {
            lines.push((
                format!("client_max_body_size {};", arg(size)),
                format!("{sp}/max-body-size"),
            ));
        }
        for (name, value) in [
            ("connect", &site.timeouts.connect),
            ("send", &site.timeouts.send),
            ("read", &site.timeouts.read),
        ] {
            if let Some(v) = value {
                lines.push((
                    format!("proxy_{name}_timeout {};", arg(v)),
                    format!("{sp}/timeouts/{name}"),
                ));
            }
        }
        if !lines.is_empty() {
            c.blank();
            for (l, p) in &lines {
                c.line(l, &[p]);
            }
        }
        if let Some(gzip) = &site.gzip {
            let gp = format!("{sp}/gzip");
            c.blank();
            c.line("gzip on;", &[&gp]);
            if gzip.options.get("vary").and_then(|v| v.as_bool()) != Some(false) {
                c.line("gzip_vary on;", &[&format!("{gp}/options/vary")]);
            }
            c.line(
                format!("gzip_min_length {};", gzip.min_length.unwrap_or(256)),
                &[&format!("{gp}/min-length")],
            );
            let mut types: Vec<&str> = Vec::new();
            let given: Vec<&str> = if gzip.types.is_empty() {
                DEFAULT_GZIP_TYPES.to_vec()
            } else {
                gzip.types.iter().map(String::as_str).collect()
            };
            for t in given {
                // text/html is always compressed; naming it again makes nginx warn.
                if t != "text/html" && !types.contains(&t) {
                    types.push(t);
                }
            }
            if !types.is_empty() {
                let list: Vec<String> = types.iter().map(|t| arg(t)).collect();
                c.line(
                    format!("gzip_types {};", list.join(" ")),
                    &[&format!("{gp}/types")],
                );
            }
        }
        let server_zones = self.server_zones(key, site);
        if !server_zones.is_empty() {
            c.blank();
            for (line, rp) in &server_zones {
                c.line(line, &[rp]);
            }
        }
    }

    /// `limit_req` lines of the zones that apply to the whole site.
    fn server_zones(&self, key: &str, site: &Site) -> Vec<(String, String)> {
        let sp = pointer(&["sites", key]);
        site.rate_limits
            .iter()
            .filter(|(_, rl)| rl.paths.is_empty())
            .map(|(zone, rl)| {
                (
                    self.limit_req(key, zone, rl),
                    format!("{sp}/rate-limits/{}", pointer_segment(zone)),
                )
            })
            .collect()
    }

    fn limit_req(&self, key: &str, zone: &str, rl: &RateLimit) -> String {
        let mut l = format!(
            "limit_req zone={}",
            self.zones[&(key.to_owned(), zone.to_owned())]
        );
        if let Some(b) = rl.burst {
            l.push_str(&format!(" burst={b}"));
        }
        if rl.nodelay {
            l.push_str(" nodelay");
        }
        l.push(';');
        l
    }

    fn locations(
        &mut self,
        c: &mut Conf,
        key: &str,
        site: &Site,
        upstreams: &BTreeMap<String, String>,
        default_upstream: &str,
        snippet: &str,
    ) {
        let sp = pointer(&["sites", key]);
        let mut locs: BTreeMap<String, Loc> = BTreeMap::new();
        locs.insert(
            "/".into(),
            Loc {
                spec: None,
                zones: Vec::new(),
            },
        );
        for (path, loc) in &site.locations {
            let e = locs.entry(path.clone()).or_insert(Loc {
                spec: None,
                zones: Vec::new(),
            });
            e.spec = Some(loc);
            if let Some(z) = &loc.rate_limit
                && site.rate_limits.contains_key(z)
            {
                e.zones.push(z.clone());
            }
        }
        for (zone, rl) in &site.rate_limits {
            for path in &rl.paths {
                if !path.starts_with('/') {
                    self.unsupported(
                        format!("{sp}/rate-limits/{}/paths", pointer_segment(zone)),
                        format!("rate limit path `{path}` does not start with `/`"),
                    );
                    continue;
                }
                let e = locs.entry(path.clone()).or_insert(Loc {
                    spec: None,
                    zones: Vec::new(),
                });
                if !e.zones.contains(zone) {
                    e.zones.push(zone.clone());
                }
            }
        }
        for (path, loc) in &locs {
            let lp = format!("{sp}/locations/{}", pointer_segment(path));
            let spec = loc.spec;
            let kind = spec.map_or(LocationKind::Proxy, |s| s.kind);
            let from_loc: &[&str] = if spec.is_some() { &[&lp] } else { &[] };
            c.blank();
            match (kind, spec.and_then(|s| s.root.as_deref())) {
                (LocationKind::Static | LocationKind::Media, Some(root)) => {
                    if root.contains('$') {
                        self.unsupported(
                            format!("{lp}/root"),
                            format!("folder `{root}` holds `$`, which nginx reads as a variable"),
                        );
                        continue;
                    }
                    let spec = spec.expect("a static location comes from the spec");
                    // Both the location and its folder end with `/` (alias traversal, POLICIES #23).
                    let lpath = if path.ends_with('/') {
                        path.clone()
                    } else {
                        format!("{path}/")
                    };
                    let dir = if root.ends_with('/') {
                        root.to_owned()
                    } else {
                        format!("{root}/")
                    };
                    c.open(format!("location {}", arg(&lpath)), &[&lp]);
                    match dir.strip_suffix(lpath.as_str()) {
                        Some(parent) => c.line(
                            format!(
                                "root {};",
                                arg(if parent.is_empty() { "/" } else { parent })
                            ),
                            &[&format!("{lp}/root")],
                        ),
                        None => c.line(format!("alias {};", arg(&dir)), &[&format!("{lp}/root")]),
                    }
                    if let Some(cc) = &spec.cache_control {
                        c.line(
                            format!("include {snippet};"),
                            &[&format!("{sp}/headers"), &format!("{sp}/hsts")],
                        );
                        // Not `always`: an error response must not be cached as immutable.
                        c.line(
                            format!("add_header Cache-Control {};", quote(cc)),
                            &[&format!("{lp}/cache-control")],
                        );
                    }
                    if let Some(e) = &spec.expires {
                        c.line(format!("expires {};", arg(e)), &[&format!("{lp}/expires")]);
                    }
                    self.common(c, key, site, spec, &lp, &loc.zones);
                    c.line("try_files $uri =404;", &[]);
                    c.close();
                }
                _ => {
                    let upstream = match spec.and_then(|s| s.upstream.as_ref()) {
                        Some(u) => match upstreams.get(u) {
                            Some(name) => name.clone(),
                            None => continue,
                        },
                        None => default_upstream.to_owned(),
                    };
                    let ws = spec.is_some_and(|s| s.websocket || s.kind == LocationKind::Websocket);
                    c.open(format!("location {}", arg(path)), from_loc);
                    let up_from = format!("{lp}/upstream");
                    c.line(
                        format!("proxy_pass http://{upstream};"),
                        &[&up_from, &format!("{sp}/upstream")],
                    );
                    c.line("proxy_http_version 1.1;", &[]);
                    c.line("proxy_set_header Host $host;", &[]);
                    c.line("proxy_set_header X-Real-IP $remote_addr;", &[]);
                    c.line(
                        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
                        &[],
                    );
                    c.line("proxy_set_header X-Forwarded-Proto $scheme;", &[]);
                    if ws {
                        let wp = format!("{lp}/websocket");
                        c.line("proxy_set_header Upgrade $http_upgrade;", &[&wp]);
                        c.line("proxy_set_header Connection $connection_upgrade;", &[&wp]);
                    } else {
                        c.line("proxy_set_header Connection \"\";", &[]);
                    }
                    c.line("proxy_redirect off;", &[]);
                    match spec.and_then(|s| s.read_timeout.as_deref()) {
                        Some(t) => c.line(
                            format!("proxy_read_timeout {};", arg(t)),
                            &[&format!("{lp}/read-timeout")],
                        ),
                        None if ws => {
                            c.line(
                                format!("proxy_read_timeout {WEBSOCKET_READ_TIMEOUT};"),
                                &[&lp],
                            );
                            c.line(
                                format!("proxy_send_timeout {WEBSOCKET_READ_TIMEOUT};"),
                                &[&lp],
                            );
                        }
                        None => {}
                    }
                    match spec {
                        Some(spec) => self.common(c, key, site, spec, &lp, &loc.zones),
                        None if !loc.zones.is_empty() => self.zones_here(c, key, site, &loc.zones),
                        None => {}
                    }
                    c.close();
                }
            }
        }
        if site.deny_hidden {
            let dp = format!("{sp}/deny-hidden");
            c.blank();
            c.line(
                "# Dot files and folders (.git, .env …), except /.well-known/.",
                &[&dp],
            );
            c.open("location ~ /\\.(?!well-known)", &[&dp]);
            c.line("deny all;", &[&dp]);
            c.line("access_log off;", &[&dp]);
            c.line("log_not_found off;", &[&dp]);
            c.close();
        }
    }

    /// Settings every kind of location may have.
    fn common(
        &mut self,
        c: &mut Conf,
        key: &str,
        site: &Site,
        spec: &Location,
        lp: &str,
        zones: &[String],
    ) {
        if let Some(size) = &spec.max_body_size {
            c.line(
                format!("client_max_body_size {};", arg(size)),
                &[&format!("{lp}/max-body-size")],
            );
        }
        if !spec.access_log {
            c.line("access_log off;", &[&format!("{lp}/access-log")]);
        }
        if !spec.allow.is_empty() {
            let ap = format!("{lp}/allow");
            for a in &spec.allow {
                c.line(format!("allow {};", arg(a)), &[&ap]);
            }
            c.line("deny all;", &[&ap]);
        }
        if !zones.is_empty() {
            self.zones_here(c, key, site, zones);
        }
    }

    /// A location's own `limit_req`s, after the server's: a block with any `limit_req` inherits none.
    fn zones_here(&self, c: &mut Conf, key: &str, site: &Site, zones: &[String]) {
        let sp = pointer(&["sites", key]);
        let mut all: Vec<&str> = site
            .rate_limits
            .iter()
            .filter(|(_, rl)| rl.paths.is_empty())
            .map(|(z, _)| z.as_str())
            .collect();
        for z in zones {
            if !all.contains(&z.as_str()) {
                all.push(z);
            }
        }
        for zone in all {
            if let Some(rl) = site.rate_limits.get(zone) {
                c.line(
                    self.limit_req(key, zone, rl),
                    &[&format!("{sp}/rate-limits/{}", pointer_segment(zone))],
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_quoted_when_nginx_could_misread_them() {
        assert_eq!(arg("/var/www/static/"), "/var/www/static/");
        assert_eq!(arg("shared:MozSSL:10m"), "shared:MozSSL:10m");
        assert_eq!(arg("/srv/my files/"), "\"/srv/my files/\"");
        assert_eq!(arg("a;b"), "\"a;b\"");
        assert_eq!(arg("{x}"), "\"{x}\"");
        assert_eq!(arg(""), "\"\"");
        assert_eq!(quote("say \"hi\" \\"), "\"say \\\"hi\\\" \\\\\"");
    }

    #[test]
    fn names_stay_inside_their_folder() {
        assert_eq!(file_name("api.example.com"), "api.example.com");
        assert_eq!(file_name("../etc/passwd"), "_.._etc_passwd");
        assert_eq!(file_name(".hidden"), "_.hidden");
        assert_eq!(ident("api.tulia-ai.example"), "api_tulia_ai_example");
    }
}
