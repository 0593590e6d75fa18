//! The host's own configuration: firewall and fail2ban.

use super::*;

impl Lower<'_> {
    pub(super) fn fail2ban(&mut self, node: &Node) -> Fail2ban {
        self.record("/fail2ban", node);
        let mut jails = BTreeMap::new();
        for jail in node.children_named("jail") {
            let Some(key) = jail.key() else { continue };
            let jp = format!("/fail2ban/jails/{}", pointer_segment(&key));
            self.record(&jp, jail);
            jails.insert(
                key,
                Jail {
                    ban_time: self.duration(jail, "ban-time", &format!("{jp}/ban-time")),
                    find_time: self.duration(jail, "find-time", &format!("{jp}/find-time")),
                    max_retry: self.uint(jail, "max-retry", &format!("{jp}/max-retry")),
                },
            );
        }
        Fail2ban {
            ban_time: self
                .duration(node, "ban-time", "/fail2ban/ban-time")
                .unwrap_or(3600),
            find_time: self
                .duration(node, "find-time", "/fail2ban/find-time")
                .unwrap_or(600),
            max_retry: self
                .uint(node, "max-retry", "/fail2ban/max-retry")
                .unwrap_or(5),
            jails,
        }
    }

    pub(super) fn firewall(&mut self, node: &Node) -> Firewall {
        self.record("/firewall", node);
        let mut allow = BTreeMap::new();
        for rule in node.children_named("allow") {
            let Some(key) = rule.key() else { continue };
            let rp = format!("/firewall/allow/{}", pointer_segment(&key));
            self.record(&rp, rule);
            let port = match key.as_str() {
                "ssh" => "22".to_owned(),
                "http" => "80".to_owned(),
                "https" => "443".to_owned(),
                other => other.to_owned(),
            };
            allow.insert(
                key,
                FirewallRule {
                    port,
                    proto: self
                        .string(rule, "proto", &format!("{rp}/proto"))
                        .unwrap_or_else(|| "tcp".into()),
                    from: self.list(rule, "from", &format!("{rp}/from")),
                    limit: self.boolean(rule, "limit", &format!("{rp}/limit"), false),
                    comment: self.string(rule, "comment", &format!("{rp}/comment")),
                },
            );
        }
        Firewall {
            backend: self
                .string(node, "backend", "/firewall/backend")
                .unwrap_or_else(|| "ufw".into()),
            default_incoming: "deny".into(),
            allow,
        }
    }
}
