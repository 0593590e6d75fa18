//! `nginx.add-header-inheritance`: a block's own `add_header` drops security headers set above.

use kiln_policy_sdk::rule::RuleDocs;
use kiln_policy_sdk::{Artifact, Finding, Input, Severity};
use serde_json::Value;

use crate::conf::{Directive, Reader};

pub const RULE: RuleDocs = RuleDocs {
    id: "nginx.add-header-inheritance",
    default_severity: Severity::Error,
    summary: "a server, location or if block drops security headers set at an outer level",
    what: "Reads the rendered nginx configuration (the main file and everything it includes, \
           resolving `include` of `sites/*.conf` and `snippets/…` against the other rendered \
           files) and computes the headers each `server`, `location` and `if` block really \
           sends. nginx inherits `add_header` from the outer level only when a block has none \
           of its own; on nginx 1.29.3 and later (`versions nginx`), `add_header_inherit merge` \
           adds the outer headers and `add_header_inherit off` drops them. Reports every block \
           where a security header (Strict-Transport-Security, Content-Security-Policy, \
           X-Frame-Options, X-Content-Type-Options, Referrer-Policy, \
           Cross-Origin-Opener-Policy, Permissions-Policy) set at an outer level is no longer \
           sent, or is sent without `always` where the outer level had it. kiln's nginx \
           emitter repeats the site's security snippet in every location with its own \
           `add_header`, so this rule guards that invariant: a spec cannot trigger it, only an \
           emitter regression or a file edited by hand.",
    why: "The trap is silent: `location /static/ { add_header Cache-Control \"public\"; }` \
          inherits none of the server's headers, so every static file goes out without HSTS, \
          CSP or X-Frame-Options, and nothing warns. Without `always`, headers are also \
          missing from 4xx and 5xx responses.",
    example: "// Cannot be triggered from a spec: kiln's nginx output includes the site's\n// security headers in every location with its own add_header. The rule guards\n// that invariant against emitter regressions and hand-edited files, for example:\n//   location /static/ { add_header Cache-Control \"public\"; }\nsite \"shop.example.com\" {\n    static \"/static/\" root=\"/var/www/shop/static/\" cache-control=\"public, immutable\"\n}",
    instead: "site \"shop.example.com\" {\n    static \"/static/\" root=\"/var/www/shop/static/\" cache-control=\"public, immutable\"\n}",
    upstream: &[
        "GX add_header_redefinition",
        "GN add_header_redefinition",
        "NG headers module",
    ],
};

/// The headers this rule protects (POLICIES #16 and #17).
const SECURITY_HEADERS: [&str; 7] = [
    "Strict-Transport-Security",
    "Content-Security-Policy",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "Referrer-Policy",
    "Cross-Origin-Opener-Policy",
    "Permissions-Policy",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inherit {
    /// nginx's classic rule: a block with any `add_header` inherits none.
    On,
    /// `add_header_inherit merge` (nginx 1.29.3+): outer headers are added to the block's.
    Merge,
    /// `add_header_inherit off` (nginx 1.29.3+): nothing is inherited.
    Off,
}

/// One effective header: its name (as a security header spells it) and `always`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Header {
    name: &'static str,
    always: bool,
}

fn security_name(name: &str) -> Option<&'static str> {
    SECURITY_HEADERS
        .iter()
        .copied()
        .find(|h| h.eq_ignore_ascii_case(name))
}

/// Whether `version` (like "1.22" or "1.29.3") is at least `min`.
fn at_least(version: &str, min: &str) -> bool {
    let parse = |v: &str| -> Vec<u32> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    parse(version) >= parse(min)
}

struct Walk<'a> {
    merge_supported: bool,
    findings: Vec<Finding>,
    artifacts: &'a [Artifact],
}

impl Walk<'_> {
    fn block(&mut self, directives: &[Directive], outer: &[Header], mode: Inherit) {
        for d in directives {
            let Some(inner) = &d.block else { continue };
            let mut own: Vec<Header> = Vec::new();
            let mut has_own = false;
            let mut inner_mode = mode;
            for x in inner.iter().filter(|x| x.block.is_none()) {
                match x.name.as_str() {
                    "add_header" => {
                        has_own = true;
                        if let Some(name) = x.args.first().and_then(|n| security_name(n)) {
                            own.retain(|h| h.name != name);
                            own.push(Header {
                                name,
                                always: x.args.iter().skip(2).any(|a| a == "always"),
                            });
                        }
                    }
                    "add_header_inherit" if self.merge_supported => {
                        inner_mode = match x.args.first().map(String::as_str) {
                            Some("merge") => Inherit::Merge,
                            Some("off") => Inherit::Off,
                            _ => Inherit::On,
                        };
                    }
                    _ => {}
                }
            }
            let effective: Vec<Header> = match inner_mode {
                Inherit::On if !has_own => outer.to_vec(),
                Inherit::On | Inherit::Off => own,
                Inherit::Merge => {
                    let mut all: Vec<Header> = outer
                        .iter()
                        .filter(|h| !own.iter().any(|o| o.name == h.name))
                        .cloned()
                        .collect();
                    all.extend(own);
                    all
                }
            };
            if matches!(d.name.as_str(), "server" | "location" | "if") {
                self.compare(d, outer, &effective, inner_mode, has_own);
            }
            self.block(inner, &effective, inner_mode);
        }
    }

    fn compare(
        &mut self,
        d: &Directive,
        outer: &[Header],
        effective: &[Header],
        mode: Inherit,
        has_own: bool,
    ) {
        let mut dropped: Vec<&str> = Vec::new();
        let mut weakened: Vec<&str> = Vec::new();
        for h in outer {
            match effective.iter().find(|e| e.name == h.name) {
                None => dropped.push(h.name),
                Some(e) if h.always && !e.always => weakened.push(h.name),
                Some(_) => {}
            }
        }
        let what = describe(d);
        let line = d.line.max(1);
        if !dropped.is_empty() {
            let cause = match (mode, has_own) {
                (Inherit::Off, _) => "`add_header_inherit off` drops the outer headers",
                _ => "its own `add_header` stops nginx from inheriting the outer ones",
            };
            self.findings.push(
                Finding::new(
                    RULE.id,
                    format!("`{what}` does not send {}: {cause}", dropped.join(", ")),
                )
                .at_artifact(d.file.clone(), line)
                .help(self.help(&d.file)),
            );
        }
        if !weakened.is_empty() {
            self.findings.push(
                Finding::new(
                    RULE.id,
                    format!(
                        "`{what}` sends {} without `always`, so its error responses lack them",
                        weakened.join(", ")
                    ),
                )
                .at_artifact(d.file.clone(), line)
                .help("add `always` to each security `add_header`"),
            );
        }
    }

    /// What to write instead: kiln's snippet for the site whose file this is, if there is one.
    fn help(&self, file: &str) -> String {
        let snippet = file
            .rsplit_once("sites/")
            .and_then(|(dir, site)| {
                let name = format!("{dir}snippets/security-headers-{site}");
                self.artifacts.iter().find(|a| a.path == name)
            })
            .and_then(|a| a.path.rsplit_once("snippets/").map(|(_, s)| s.to_owned()));
        let mut help = match snippet {
            Some(s) => {
                format!("repeat the security headers in this block: `include snippets/{s};`")
            }
            None => "repeat the security headers (with `always`) in this block".to_owned(),
        };
        if self.merge_supported {
            help.push_str(", or set `add_header_inherit merge;` at the http level");
        }
        help
    }
}

/// `location /static/`, `server shop.example.com`, `if ($x)`.
fn describe(d: &Directive) -> String {
    match d.name.as_str() {
        "server" => "server".to_owned(),
        _ if d.args.is_empty() => d.name.clone(),
        _ => format!("{} {}", d.name, d.args.join(" ")),
    }
}

/// Whether an artifact is nginx configuration.
fn is_nginx(a: &Artifact) -> bool {
    (a.target == "nginx" || a.path.starts_with("nginx/") || a.path.contains("/nginx/"))
        && (a.path.ends_with(".conf"))
}

pub fn check(input: &Input) -> Vec<Finding> {
    let version = input
        .pointer("/versions/nginx")
        .and_then(Value::as_str)
        .unwrap_or("1.22");
    let mut walk = Walk {
        merge_supported: at_least(version, "1.29.3"),
        findings: Vec::new(),
        artifacts: &input.artifacts,
    };
    let files: Vec<&Artifact> = input.artifacts.iter().filter(|a| is_nginx(a)).collect();
    let mut reader = Reader::new(&input.artifacts);
    // Main files first (they include the rest), then whatever no main file included.
    let roots: Vec<&Artifact> = files
        .iter()
        .copied()
        .filter(|a| a.path.ends_with("/nginx.conf") || a.path == "nginx.conf")
        .collect();
    let mut trees = Vec::new();
    for root in &roots {
        trees.push(reader.read(root));
    }
    let included = reader.included.clone();
    let rest: Vec<&Artifact> = files
        .iter()
        .copied()
        .filter(|a| !roots.iter().any(|r| r.path == a.path) && !included.contains(&a.path))
        .collect();
    for a in &rest {
        trees.push(reader.read(a));
    }
    for tree in &trees {
        walk.block(tree, &[], Inherit::On);
    }
    walk.findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_policy_sdk::test_support::{input, parse_input};
    use serde_json::json;

    fn run(version: &str, files: &[(&str, &str)]) -> Vec<(String, u32, String)> {
        let mut i = input(json!({"versions": {"nginx": version}}));
        i.artifacts = files
            .iter()
            .map(|(p, t)| Artifact {
                target: "nginx".into(),
                path: (*p).into(),
                text: (*t).into(),
            })
            .collect();
        check(&i)
            .into_iter()
            .map(|f| {
                let a = f.artifact.unwrap();
                (a.path, a.line, f.message)
            })
            .collect()
    }

    const MAIN: &str = "http {\n    include sites/*.conf;\n}\n";
    const SNIPPET: &str = "add_header Strict-Transport-Security \"max-age=63072000\" always;\nadd_header X-Frame-Options DENY always;\n";

    #[test]
    fn the_classic_trap() {
        let site = "server {\n    listen 443 ssl;\n    include snippets/h.conf;\n    location / {\n        proxy_pass http://app;\n    }\n    location /static/ {\n        add_header Cache-Control \"public\";\n    }\n}\n";
        let f = run(
            "1.22",
            &[
                ("nginx/nginx.conf", MAIN),
                ("nginx/sites/a.conf", site),
                ("nginx/snippets/h.conf", SNIPPET),
            ],
        );
        assert_eq!(
            f,
            [(
                "nginx/sites/a.conf".to_owned(),
                7,
                "`location /static/` does not send Strict-Transport-Security, X-Frame-Options: its own `add_header` stops nginx from inheriting the outer ones".to_owned()
            )]
        );
    }

    #[test]
    fn repeating_the_snippet_fixes_it() {
        let site = "server {\n    include snippets/h.conf;\n    location /static/ {\n        include snippets/h.conf;\n        add_header Cache-Control \"public\";\n    }\n}\n";
        assert!(
            run(
                "1.22",
                &[
                    ("nginx/nginx.conf", MAIN),
                    ("nginx/sites/a.conf", site),
                    ("nginx/snippets/h.conf", SNIPPET)
                ]
            )
            .is_empty()
        );
    }

    #[test]
    fn http_level_headers_and_if_blocks() {
        let main = "http {\n    add_header X-Content-Type-Options nosniff always;\n    server {\n        if ($x) {\n            add_header X-Debug 1;\n        }\n        location / { }\n    }\n}\n";
        let f = run("1.22", &[("nginx/nginx.conf", main)]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].1, 4);
        assert!(
            f[0].2
                .starts_with("`if ($x)` does not send X-Content-Type-Options")
        );
    }

    #[test]
    fn add_header_inherit_needs_1_29_3() {
        let main = "http {\n    add_header_inherit merge;\n    add_header X-Frame-Options DENY always;\n    server {\n        add_header Cache-Control no-store;\n    }\n}\n";
        assert!(run("1.29.3", &[("nginx/nginx.conf", main)]).is_empty());
        assert_eq!(run("1.29.2", &[("nginx/nginx.conf", main)]).len(), 1);
        let off = "http {\n    add_header X-Frame-Options DENY always;\n    server {\n        add_header_inherit off;\n    }\n}\n";
        let f = run("1.29.3", &[("nginx/nginx.conf", off)]);
        assert!(f[0].2.contains("`add_header_inherit off` drops"));
    }

    #[test]
    fn always_must_stay() {
        let main = "http {\n    server {\n        add_header X-Frame-Options DENY always;\n        location / {\n            add_header X-Frame-Options DENY;\n        }\n    }\n}\n";
        let f = run("1.22", &[("nginx/nginx.conf", main)]);
        assert_eq!(f.len(), 1);
        assert!(
            f[0].2.ends_with(
                "sends X-Frame-Options without `always`, so its error responses lack them"
            )
        );
    }

    #[test]
    fn standalone_site_files() {
        let site = "server {\n    add_header X-Frame-Options DENY always;\n    location /x/ { add_header A b; }\n}\n";
        assert_eq!(
            run("1.22", &[("compose/nginx/sites/a.conf", site)]).len(),
            1
        );
    }

    #[test]
    fn clean_project_output() {
        let i = parse_input(include_str!(
            "../../../testdata/inputs/clean-production.json"
        ));
        assert!(
            i.artifacts
                .iter()
                .any(|a| a.path == "compose/nginx/nginx.conf")
        );
        assert!(check(&i).is_empty());
        // Drop the snippet from the static location: the finding names the real line.
        let mut broken = i.clone();
        for a in &mut broken.artifacts {
            if a.path == "nginx/sites/shop.example.com.conf" {
                a.text = a.text.replace(
                    "        include snippets/security-headers-shop.example.com.conf;\n        add_header Cache-Control",
                    "        add_header Cache-Control",
                );
            }
        }
        let f = check(&broken);
        assert_eq!(f.len(), 1, "{f:#?}");
        let a = f[0].artifact.as_ref().unwrap();
        assert_eq!(a.path, "nginx/sites/shop.example.com.conf");
        let line = broken
            .artifact(&a.path)
            .unwrap()
            .lines()
            .find(|(n, _)| *n == a.line)
            .unwrap()
            .1;
        assert_eq!(line.trim(), "location /static/ {");
        assert!(
            f[0].help
                .as_ref()
                .unwrap()
                .contains("include snippets/security-headers-shop.example.com.conf;")
        );
    }
}
