//! Patches: lines a spec adds to one generated file for what the language does not say
//! (`patch nginx site=… { directive … }`, `patch systemd service=… { set … }`,
//! `patch compose service=… { set … }`). They are applied after every target has emitted and
//! before the policies read the files, so the policies judge the patched output; each added
//! line points at its patch line (`/patches/N/lines/I`), so `kiln explain` and `kiln diff`
//! show where it came from. A patch whose target is not in the output is an error.

use kiln_core::model::{Model, Patch, PatchLine, PatchTarget};
use kiln_core::{Artifact, Lines, Pointers};

/// A patch that found nothing to apply to: its model pointer, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failed {
    pub pointer: String,
    pub message: String,
}

/// Applies every patch of the model to the files.
pub fn apply(model: &Model, artifacts: &mut [Artifact]) -> Vec<Failed> {
    let mut failed = Vec::new();
    for (i, patch) in model.patches.iter().enumerate() {
        let pointer = format!("/patches/{i}");
        if let Err(message) = apply_one(model, patch, &pointer, artifacts) {
            failed.push(Failed { pointer, message });
        }
    }
    failed
}

fn apply_one(
    model: &Model,
    patch: &Patch,
    pointer: &str,
    artifacts: &mut [Artifact],
) -> Result<(), String> {
    let (paths, what) = match &patch.target {
        PatchTarget::Nginx { site, .. } => (
            vec![format!("nginx/sites/{site}.conf")],
            format!("site `{site}`"),
        ),
        PatchTarget::Systemd { service, .. } => {
            let unit = crate::systemd::unit_file_name(model, service);
            // One unit, or a template for several instances.
            let files = vec![
                format!("systemd/{unit}.service"),
                format!("systemd/{unit}@.service"),
            ];
            (files, format!("the systemd unit of service `{service}`"))
        }
        PatchTarget::Compose { service } => (
            vec!["compose/compose.yaml".to_owned()],
            format!("compose service `{service}`"),
        ),
    };
    let rendered: Vec<String> = patch
        .lines
        .iter()
        .map(|l| render(&patch.target, l))
        .collect();
    let target = patch.target.target();
    if !model.targets.contains(&target) {
        return Err(format!(
            "the environment does not emit {} (`targets` has no `{}`)",
            target.as_str(),
            target.as_str()
        ));
    }
    let Some(file) = artifacts.iter_mut().find(|a| paths.contains(&a.path)) else {
        return Err(format!("{what} is not in this environment's output"));
    };
    let mut lines: Vec<String> = file.text.lines().map(str::to_owned).collect();
    let mut pointers: Vec<Pointers> = file.lines.iter().cloned().collect();
    pointers.resize(lines.len(), Pointers::default());
    let (at, indent, replace) = match &patch.target {
        PatchTarget::Nginx { site, location } => nginx_point(&lines, site, location.as_deref())?,
        PatchTarget::Systemd { section, .. } => systemd_point(&lines, section)?,
        PatchTarget::Compose { service } => compose_point(&lines, service, &rendered)?,
    };
    // A compose key the patch sets again: its old lines go.
    for range in replace.into_iter().rev() {
        lines.drain(range.clone());
        pointers.drain(range);
    }
    let at = at.min(lines.len());
    for (i, line) in rendered.iter().enumerate().rev() {
        lines.insert(at, format!("{indent}{line}"));
        pointers.insert(at, Pointers::new(vec![format!("{pointer}/lines/{i}")]));
    }
    let mut text = lines.join("\n");
    text.push('\n');
    let mut rebuilt = Lines::new();
    for p in pointers {
        rebuilt.push(p);
    }
    file.text = text;
    file.lines = rebuilt;
    Ok(())
}

/// A patch line as its file writes it.
fn render(target: &PatchTarget, line: &PatchLine) -> String {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match target {
        PatchTarget::Nginx { .. } => {
            let mut out = line.name.clone();
            for v in &line.values {
                let t = text(v);
                // (A value holds no quote: resolve refuses one.)
                if t.is_empty() || t.contains(char::is_whitespace) {
                    out.push_str(&format!(" \"{t}\""));
                } else {
                    out.push_str(&format!(" {t}"));
                }
            }
            out.push(';');
            out
        }
        PatchTarget::Systemd { .. } => {
            let values: Vec<String> = line.values.iter().map(text).collect();
            format!("{}={}", line.name, values.join(" "))
        }
        PatchTarget::Compose { .. } => {
            let yaml = |v: &serde_json::Value| match v {
                serde_json::Value::String(s) => crate::yaml::scalar(s),
                other => other.to_string(),
            };
            match line.values.as_slice() {
                [one] => format!("{}: {}", line.name, yaml(one)),
                many => format!(
                    "{}: [{}]",
                    line.name,
                    many.iter().map(yaml).collect::<Vec<_>>().join(", ")
                ),
            }
        }
    }
}

/// The line index of a block's closing brace, from the line after its opening.
fn block_end(lines: &[String], open: usize) -> Option<usize> {
    let mut depth = 0i32;
    for (i, line) in lines.iter().enumerate().skip(open) {
        let code = line.split('#').next().unwrap_or("");
        depth += code.matches('{').count() as i32;
        depth -= code.matches('}').count() as i32;
        if depth == 0 {
            return Some(i);
        }
    }
    None
}

type Point = (usize, String, Vec<std::ops::Range<usize>>);

/// Where nginx directives go: before the closing brace of the site's main `server` block (the
/// last one naming it: the HTTPS one when there is TLS), or of one of its locations.
fn nginx_point(lines: &[String], site: &str, location: Option<&str>) -> Result<Point, String> {
    let names = |l: &str| {
        l.trim()
            .strip_prefix("server_name ")
            .map(|n| {
                n.trim_end_matches(';')
                    .split_whitespace()
                    .any(|n| n == site)
            })
            .unwrap_or(false)
    };
    let servers: Vec<(usize, usize)> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.trim_end() == "server {")
        .filter_map(|(i, _)| Some((i, block_end(lines, i)?)))
        .filter(|&(start, end)| lines[start..end].iter().any(|l| names(l)))
        .collect();
    let Some(&(start, end)) = servers.last() else {
        return Err(format!("no server block of `{site}` in its nginx file"));
    };
    let Some(path) = location else {
        return Ok((end, "    ".into(), Vec::new()));
    };
    let open = (start..end).find(|&i| {
        let l = lines[i].trim();
        l.starts_with("location ")
            && l.ends_with('{')
            && l.split_whitespace().rev().nth(1) == Some(path)
    });
    let Some(open) = open else {
        return Err(format!("site `{site}` has no location `{path}`"));
    };
    let close = block_end(lines, open).ok_or_else(|| format!("location `{path}` is not closed"))?;
    Ok((close, "        ".into(), Vec::new()))
}

/// Where unit keys go: at the end of the section (after its last key).
fn systemd_point(lines: &[String], section: &str) -> Result<Point, String> {
    let header = format!("[{section}]");
    let Some(start) = lines.iter().position(|l| l.trim() == header) else {
        return Err(format!("the unit has no [{section}] section"));
    };
    let mut end = lines[start + 1..]
        .iter()
        .position(|l| l.starts_with('['))
        .map_or(lines.len(), |i| start + 1 + i);
    while end > start + 1 && lines[end - 1].trim().is_empty() {
        end -= 1;
    }
    Ok((end, String::new(), Vec::new()))
}

/// Where a compose service's keys go: at the end of its block under `services:`; a key it
/// has already is replaced (YAML allows a key once).
fn compose_point(lines: &[String], service: &str, new: &[String]) -> Result<Point, String> {
    let services = lines
        .iter()
        .position(|l| l == "services:")
        .ok_or("compose.yaml has no `services:`")?;
    let header = format!("  {service}:");
    let start = lines[services + 1..]
        .iter()
        .take_while(|l| l.is_empty() || l.starts_with(' '))
        .position(|l| *l == header)
        .map(|i| services + 1 + i)
        .ok_or_else(|| format!("compose has no service `{service}`"))?;
    let end = lines[start + 1..]
        .iter()
        .position(|l| !l.is_empty() && !l.starts_with("    "))
        .map_or(lines.len(), |i| start + 1 + i);
    let keys: Vec<&str> = new.iter().filter_map(|l| l.split(':').next()).collect();
    let mut replace = Vec::new();
    let mut i = start + 1;
    while i < end {
        let l = &lines[i];
        let is_key = l.starts_with("    ") && !l.starts_with("     ");
        let key = l.trim_start().split(':').next().unwrap_or("");
        if is_key && keys.contains(&key) {
            let mut j = i + 1;
            while j < end && (lines[j].starts_with("     ") || lines[j].starts_with("    - ")) {
                j += 1;
            }
            replace.push(i..j);
            i = j;
        } else {
            i += 1;
        }
    }
    let removed: usize = replace.iter().map(|r| r.len()).sum();
    Ok((end - removed, "    ".into(), replace))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn compose_keys_are_replaced_not_repeated() {
        let yaml = lines(
            "services:\n  web:\n    image: app\n    stop_grace_period: 10s\n    ports:\n      - 80:80\n  worker:\n    image: app\nvolumes: {}\n",
        );
        let new = vec!["stop_grace_period: 75s".to_owned(), "ports: []".to_owned()];
        let (at, indent, replace) = compose_point(&yaml, "web", &new).unwrap();
        assert_eq!(replace, vec![3..4, 4..6]);
        // After the old lines go, the new ones land at the end of `web`, before `worker`.
        assert_eq!((at, indent.as_str()), (3, "    "));
        assert!(compose_point(&yaml, "gone", &new).is_err());
    }

    #[test]
    fn nginx_patches_go_into_the_main_server_or_a_location() {
        let conf = lines(
            "server {\n    listen 80;\n    server_name a.example;\n    return 308 https://$host$request_uri;\n}\n\nserver {\n    listen 443 ssl;\n    server_name a.example www.a.example;\n    location = /health {\n        access_log off;\n    }\n    location ^~ /static/ {\n        root /srv;\n    }\n}\n",
        );
        assert_eq!(
            nginx_point(&conf, "a.example", None).unwrap().0,
            15,
            "the HTTPS server's brace"
        );
        assert_eq!(
            nginx_point(&conf, "a.example", Some("/static/")).unwrap().0,
            14
        );
        assert_eq!(
            nginx_point(&conf, "a.example", Some("/health")).unwrap().0,
            11
        );
        assert!(nginx_point(&conf, "a.example", Some("/gone/")).is_err());
        assert!(nginx_point(&conf, "b.example", None).is_err());
    }

    #[test]
    fn systemd_keys_end_their_section() {
        let unit = lines(
            "[Unit]\nDescription=x\n\n[Service]\nExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\n",
        );
        assert_eq!(systemd_point(&unit, "Service").unwrap().0, 5);
        assert_eq!(systemd_point(&unit, "Install").unwrap().0, 8);
        assert!(systemd_point(&unit, "Socket").is_err());
    }

    #[test]
    fn lines_are_written_as_their_file_reads_them() {
        let line = |name: &str, values: Vec<serde_json::Value>| PatchLine {
            name: name.into(),
            values,
        };
        let nginx = PatchTarget::Nginx {
            site: "a".into(),
            location: None,
        };
        assert_eq!(
            render(&nginx, &line("proxy_buffers", vec![8.into(), "16k".into()])),
            "proxy_buffers 8 16k;"
        );
        assert_eq!(
            render(
                &nginx,
                &line("add_header", vec!["X-A".into(), "a b".into()])
            ),
            "add_header X-A \"a b\";"
        );
        let systemd = PatchTarget::Systemd {
            service: "web".into(),
            section: "Service".into(),
        };
        assert_eq!(
            render(&systemd, &line("OOMScoreAdjust", vec![(-100).into()])),
            "OOMScoreAdjust=-100"
        );
        let compose = PatchTarget::Compose {
            service: "web".into(),
        };
        assert_eq!(
            render(&compose, &line("init", vec![true.into()])),
            "init: true"
        );
        assert_eq!(
            render(&compose, &line("stop_signal", vec!["SIGINT".into()])),
            "stop_signal: SIGINT"
        );
    }
}
