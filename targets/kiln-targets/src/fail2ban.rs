//! fail2ban on the systemd target's host, from `fail2ban { … }`: one `jail.d` file with the
//! defaults and the jails, each reading the log kiln knows it needs (sshd from the journal,
//! Debian 12 has no auth.log by default; the nginx jails from the host nginx's logs) and
//! banning through the firewall backend the spec uses, on the ports the sites listen on.

use kiln_core::Artifact;
use kiln_core::model::{Model, Target, pointer};

use crate::{Writer, header_text};

/// Where kiln's host nginx writes its logs (nginx.conf's `error_log` and `access_log`).
const NGINX_ERROR_LOG: &str = "/var/log/nginx/error.log";
const NGINX_ACCESS_LOG: &str = "/var/log/nginx/access.log";

/// The jail file, and what the spec asks that this host cannot do.
pub(crate) fn emit(model: &Model) -> (Option<Artifact>, Vec<(String, String)>) {
    let Some(f) = &model.fail2ban else {
        return (None, Vec::new());
    };
    let mut skipped = Vec::new();
    let mut w = Writer::new();
    w.line(format!("# {}", header_text(model)), &[]);
    w.line(
        format!(
            "# fail2ban: install as /etc/fail2ban/jail.d/{}.local, then `systemctl reload fail2ban`.",
            crate::file_part(&model.project.name)
        ),
        &["/fail2ban"],
    );
    w.line("[DEFAULT]", &["/fail2ban"]);
    w.line(format!("bantime = {}", f.ban_time), &["/fail2ban/ban-time"]);
    w.line(
        format!("findtime = {}", f.find_time),
        &["/fail2ban/find-time"],
    );
    w.line(
        format!("maxretry = {}", f.max_retry),
        &["/fail2ban/max-retry"],
    );
    match model.firewall.as_ref().map(|fw| fw.backend.as_str()) {
        Some("ufw") => {
            w.line(
                "# Bans are ufw rules, like the firewall's.",
                &["/firewall/backend"],
            );
            w.line("banaction = ufw", &["/firewall/backend"]);
            w.line("banaction_allports = ufw", &["/firewall/backend"]);
        }
        Some(_) => {
            w.line(
                "# Bans are nftables sets, next to the firewall's table.",
                &["/firewall/backend"],
            );
            w.line("banaction = nftables-multiport", &["/firewall/backend"]);
            w.line(
                "banaction_allports = nftables-allports",
                &["/firewall/backend"],
            );
        }
        None => {}
    }
    let mut web_ports: Vec<u16> = model
        .sites
        .values()
        .flat_map(|s| {
            let mut p = vec![s.listen.http];
            if s.tls.mode != "off" {
                p.push(s.listen.https);
            }
            p
        })
        .collect();
    web_ports.sort_unstable();
    web_ports.dedup();
    let host_nginx = model.targets.contains(&Target::Nginx);
    for (name, jail) in &f.jails {
        let jp = pointer(&["fail2ban", "jails", name]);
        let nginx = name.starts_with("nginx-");
        if nginx && !host_nginx {
            skipped.push((
                jp,
                format!("jail `{name}` reads the host nginx's log, and this environment has no nginx target: it is left out"),
            ));
            continue;
        }
        w.line("", &[]);
        w.line(format!("[{name}]"), &[&jp]);
        w.line("enabled = true", &[&jp]);
        match name.as_str() {
            "sshd" => {
                w.line(
                    "# The journal: Debian 12 writes no /var/log/auth.log by default.",
                    &[],
                );
                w.line("backend = systemd", &[&jp]);
                if let Some(rule) = model.firewall.as_ref().and_then(|fw| fw.allow.get("ssh")) {
                    w.line(
                        format!("port = {}", rule.port),
                        &[&pointer(&["firewall", "allow", "ssh"])],
                    );
                }
            }
            "recidive" => {
                w.line("logpath = /var/log/fail2ban.log", &[&jp]);
            }
            _ => {
                let log = if name == "nginx-bad-request" {
                    NGINX_ACCESS_LOG
                } else {
                    NGINX_ERROR_LOG
                };
                w.line(format!("logpath = {log}"), &[&jp]);
                let ports: Vec<String> = web_ports.iter().map(u16::to_string).collect();
                if !ports.is_empty() {
                    w.line(format!("port = {}", ports.join(",")), &["/sites"]);
                }
            }
        }
        if let Some(t) = jail.ban_time {
            w.line(format!("bantime = {t}"), &[&format!("{jp}/ban-time")]);
        }
        if let Some(t) = jail.find_time {
            w.line(format!("findtime = {t}"), &[&format!("{jp}/find-time")]);
        }
        if let Some(n) = jail.max_retry {
            w.line(format!("maxretry = {n}"), &[&format!("{jp}/max-retry")]);
        }
    }
    let file = format!(
        "fail2ban/jail.d/{}.local",
        crate::file_part(&model.project.name)
    );
    (Some(w.finish(file)), skipped)
}
