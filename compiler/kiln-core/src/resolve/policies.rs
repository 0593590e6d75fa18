//! The `policies` blocks: modules, settings, rule severities and waivers.

use super::*;

impl Lower<'_> {
    pub(super) fn policies(&mut self, node: &Node) -> PolicyConfig {
        let mut config = PolicyConfig::default();
        for child in &node.children {
            let Some(key) = child.key() else { continue };
            match child.name.as_str() {
                "module" => {
                    let mp = format!("/policies/modules/{}", pointer_segment(&key));
                    self.record(&mp, child);
                    let module = ModuleRef {
                        blake3: self.string(child, "blake3", &format!("{mp}/blake3")),
                        settings: self.free_map(child.child("settings"), &format!("{mp}/settings")),
                        span: Some(child.value_span()),
                    };
                    config.modules.insert(key, module);
                }
                "settings" => {
                    let sp = format!("/policies/settings/{}", pointer_segment(&key));
                    let map = self.free_map(Some(child), &sp);
                    config
                        .settings
                        .insert(key, serde_json::Value::Object(map.into_iter().collect()));
                }
                "rule" => {
                    let rp = format!("/policies/rules/{}", pointer_segment(&key));
                    self.record(&rp, child);
                    let severity = self
                        .string(child, "severity", &format!("{rp}/severity"))
                        .unwrap_or_else(|| "error".into());
                    let reason = self.string(child, "reason", &format!("{rp}/reason"));
                    if severity == "off" && reason.is_none() {
                        self.diags.push(
                            Diagnostic::error("missing-value", format!("rule `{key}` is turned off without a reason"))
                                .with_label(child.value_span(), "no `reason`")
                                .with_help("add `reason=\"…\"`: reviewers need to know why a check does not apply"),
                        );
                    }
                    config.rules.insert(
                        key,
                        RuleOverride {
                            severity,
                            reason,
                            span: Some(child.value_span()),
                        },
                    );
                }
                "waive" => {
                    let reason = child
                        .child("reason")
                        .and_then(|r| r.args.first())
                        .map(|v| v.value.to_text());
                    if reason.is_none() {
                        self.diags.push(
                            Diagnostic::error(
                                "missing-value",
                                format!("the waiver of `{key}` has no reason"),
                            )
                            .with_label(child.value_span(), "no `reason`")
                            .with_help(
                                "add `reason=\"…\"`, and preferably `expires=\"YYYY-MM-DD\"`",
                            ),
                        );
                    }
                    config.waivers.push(Waiver {
                        rule: key,
                        path: child
                            .child("path")
                            .and_then(|r| r.args.first())
                            .map(|v| v.value.to_text()),
                        reason,
                        expires: child
                            .child("expires")
                            .and_then(|r| r.args.first())
                            .map(|v| v.value.to_text()),
                        span: Some(child.value_span()),
                    });
                }
                _ => {}
            }
        }
        config
    }
}
