//! Layering: an environment is its `extends` chain and its presets merged node
//! by node. Nodes match by name, and by name and first argument for named nodes
//! (`service web`). A later layer overrides values, adds nodes, replaces a node
//! whole with `(replace)`, removes one with `(remove)`, and unsets a setting or
//! variable with `#null`. A node whose first value changes (`run gunicorn` →
//! `run uvicorn`) is replaced whole, so options of the old value do not leak.

use crate::diagnostic::Diagnostic;
use crate::schema::{NodeSpec, Ty};
use crate::syntax::{Node, Value};

/// Merges the nodes of a higher layer (`over`) into `base`.
pub fn merge(
    base: &mut Vec<Node>,
    over: &[Node],
    specs: &'static [NodeSpec],
    free: Option<Ty>,
    diags: &mut Vec<Diagnostic>,
) {
    for node in over {
        let spec = specs.iter().find(|s| s.name == node.name);
        if spec.is_none() && free.is_none() {
            continue; // unknown: reported by schema::check
        }
        if node
            .annotation
            .as_ref()
            .is_some_and(|(a, _)| a != "remove" && a != "replace")
        {
            continue; // an unknown annotation: reported by schema::check
        }
        if spec.is_some_and(|s| s.repeat) {
            base.push(node.clone());
            continue;
        }
        let keyed = spec.is_some_and(|s| s.key.is_some());
        let position = base
            .iter()
            .rposition(|b| b.name == node.name && (!keyed || b.key() == node.key()));
        let annotation = node.annotation.as_ref().map(|(a, _)| a.as_str());
        match (annotation, position) {
            (Some("remove"), Some(i)) => {
                base.remove(i);
            }
            (Some("remove"), None) => {
                let what = if keyed {
                    format!("{} {}", node.name, node.key().unwrap_or_default())
                } else {
                    node.name.clone()
                };
                diags.push(
                    Diagnostic::warning(
                        "nothing-to-remove",
                        format!("`(remove){what}` removes nothing"),
                    )
                    .with_label(node.span, "no such node in the layers below")
                    .with_help("check the name, or delete this line"),
                );
            }
            (Some("replace"), Some(i)) => {
                let old = std::mem::replace(&mut base[i], strip_annotation(node));
                inherit_history(&mut base[i], &old);
            }
            (_, None) => {
                if !unsets(node, spec) {
                    base.push(strip_annotation(node));
                }
            }
            (_, Some(i)) => {
                if unsets(node, spec) {
                    base.remove(i);
                    continue;
                }
                let skip = usize::from(keyed);
                let old_values = &base[i].args[skip.min(base[i].args.len())..];
                let new_values = &node.args[skip.min(node.args.len())..];
                let first_changed = matches!((old_values.first(), new_values.first()), (Some(a), Some(b)) if a.value != b.value);
                if spec.is_none() || (first_changed && spec.is_some_and(|s| s.replace_on_change)) {
                    let old = std::mem::replace(&mut base[i], strip_annotation(node));
                    inherit_history(&mut base[i], &old);
                    continue;
                }
                let target = &mut base[i];
                if !new_values.is_empty() {
                    target
                        .overrides
                        .insert(0, (target.value_span(), target.layer.clone()));
                    target.args = node.args.clone();
                    target.name_span = node.name_span;
                    target.span = node.span;
                    target.layer = node.layer.clone();
                }
                let spec = spec.expect("checked above");
                merge(
                    &mut target.children,
                    &node.children,
                    spec.children,
                    spec.free,
                    diags,
                );
            }
        }
    }
}

/// `NAME #null` unsets a setting or variable.
fn unsets(node: &Node, spec: Option<&NodeSpec>) -> bool {
    let is_value = spec.is_none_or(|s| s.is_setting());
    is_value && matches!(node.args.as_slice(), [v] if v.value == Value::Null)
}

fn strip_annotation(node: &Node) -> Node {
    let mut node = node.clone();
    node.annotation = None;
    node
}

fn inherit_history(new: &mut Node, old: &Node) {
    new.overrides.push((old.value_span(), old.layer.clone()));
    new.overrides.extend(old.overrides.iter().cloned());
}
