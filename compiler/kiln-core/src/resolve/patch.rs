//! `patch`: lines a spec adds to generated files, checked so none can break out of its line.

use super::*;

impl Lower<'_> {
    /// A `patch`: its target, and its lines checked so that none can end the directive,
    /// key or block it is written into.
    pub(super) fn patch(&mut self, node: &Node, ptr: &str) -> Option<Patch> {
        let kind = node.key()?;
        self.record(ptr, node);
        let required = |lower: &mut Self, name: &str| -> Option<String> {
            let v = node
                .child(name)
                .and_then(|c| c.args.first())
                .map(|a| a.value.to_text());
            if v.is_none() {
                lower.diags.push(
                    Diagnostic::error("missing-value", format!("a `patch {kind}` needs `{name}=`"))
                        .with_label(node.name_span, format!("no `{name}`"))
                        .with_help(format!("say what it patches: `patch {kind} {name}=…`")),
                );
            }
            v
        };
        let text = |name: &str| {
            node.child(name)
                .and_then(|c| c.args.first())
                .map(|a| a.value.to_text())
        };
        let target = match kind.as_str() {
            "nginx" => PatchTarget::Nginx {
                site: required(self, "site")?,
                location: text("location"),
            },
            "systemd" => PatchTarget::Systemd {
                service: required(self, "service")?,
                section: text("section").unwrap_or_else(|| "Service".into()),
            },
            _ => PatchTarget::Compose {
                service: required(self, "service")?,
            },
        };
        let (wanted, other) = match kind.as_str() {
            "nginx" => ("directive", "set"),
            _ => ("set", "directive"),
        };
        let mut lines = Vec::new();
        for child in &node.children {
            if child.name == other {
                self.diags.push(
                    Diagnostic::error(
                        "invalid-value",
                        format!("a `patch {kind}` takes `{wanted}`, not `{other}`"),
                    )
                    .with_label(child.name_span, format!("not a line of a `patch {kind}`"))
                    .with_help(format!("write `{wanted} …`")),
                );
                continue;
            }
            if child.name != wanted {
                continue;
            }
            let Some((name, values)) = child.args.split_first() else {
                continue;
            };
            let name_text = name.value.to_text();
            let name_ok = match kind.as_str() {
                "nginx" => name_text
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "systemd" => name_text.chars().all(|c| c.is_ascii_alphanumeric()),
                _ => name_text
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            } && !name_text.is_empty();
            if !name_ok {
                self.diags.push(
                    Diagnostic::error("invalid-value", format!("`{name_text}` is not {}", match kind.as_str() {
                        "nginx" => "an nginx directive name",
                        "systemd" => "a systemd key",
                        _ => "a compose key",
                    }))
                        .with_label(name.span, "not a name")
                        .with_help(match kind.as_str() {
                            "nginx" => "an nginx directive is lowercase letters, digits and `_`",
                            "systemd" => "a unit key is letters and digits (`LimitNOFILE`)",
                            _ => "a compose key is lowercase letters, digits and `_` (`stop_grace_period`)",
                        }),
                );
                continue;
            }
            // A value may not end the line or block it is written into.
            let bad = values.iter().find(|v| {
                v.value.to_text().chars().any(|c| {
                    c.is_control()
                        || matches!(
                            (kind.as_str(), c),
                            ("nginx", ';' | '{' | '}' | '"' | '\'' | '\\' | '#')
                        )
                })
            });
            if let Some(v) = bad {
                self.diags.push(
                    Diagnostic::error(
                        "invalid-value",
                        "this value would end the line or block it is written into",
                    )
                    .with_label(
                        v.span,
                        "a control character, or one of ; { } \" ' \\ # in an nginx argument",
                    )
                    .with_help("a patch adds lines; it cannot open or close blocks"),
                );
                continue;
            }
            let line_ptr = format!("{ptr}/lines/{}", lines.len());
            self.record(&line_ptr, child);
            lines.push(PatchLine {
                name: name_text,
                values: values
                    .iter()
                    .map(|v| match &v.value {
                        Value::Bool(b) => serde_json::Value::from(*b),
                        Value::Int(i) => serde_json::Value::from(*i),
                        Value::Float(f) => serde_json::Value::from(*f),
                        other => serde_json::Value::from(other.to_text()),
                    })
                    .collect(),
            });
        }
        Some(Patch { target, lines })
    }
}
