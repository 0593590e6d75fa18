//! Layering: an environment is its `extends` chain and its presets merged node
//! by node. Nodes match by name, and by name and first argument for named nodes
//! (`service web`). A later layer overrides values, adds nodes, replaces a node
//! whole with `(replace)`, removes one with `(remove)`, and unsets a setting or
//! variable with `#null`. A node whose first value changes (`run gunicorn` →
//! `run uvicorn`) is replaced whole, so options of the old value do not leak.

use crate::diagnostic::Diagnostic;
use crate::schema::{NodeSpec, Ty};
use crate::syntax::{Node, Value};

/// What identifies a node in its level: its name, and its key for keyed nodes.
type Identity = (String, Option<String>);

fn identity(node: &Node, keyed: bool) -> Identity {
    (node.name.clone(), if keyed { node.key() } else { None })
}

/// Merges the nodes of a higher layer (`over`) into `base`.
///
/// Linear in the sizes of both: `base` is held as slots (a removed node leaves a hole, closed
/// at the end), and each identity maps to the slots holding it, the last one in force, so a
/// level of thousands of nodes (an `env` block) is not searched once per node.
pub fn merge(
    base: &mut Vec<Node>,
    over: &[Node],
    specs: &'static [NodeSpec],
    free: Option<Ty>,
    diags: &mut Vec<Diagnostic>,
) {
    let spec_of = |name: &str| specs.iter().find(|s| s.name == name);
    let is_keyed = |name: &str| spec_of(name).is_some_and(|s| s.key.is_some());
    let mut slots: Vec<Option<Node>> = std::mem::take(base).into_iter().map(Some).collect();
    let mut index: std::collections::HashMap<Identity, Vec<usize>> =
        std::collections::HashMap::new();
    for (i, n) in slots.iter().enumerate() {
        let n = n.as_ref().expect("all present");
        index
            .entry(identity(n, is_keyed(&n.name)))
            .or_default()
            .push(i);
    }
    for node in over {
        let spec = spec_of(&node.name);
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
        let keyed = spec.is_some_and(|s| s.key.is_some());
        let id = identity(node, keyed);
        if spec.is_some_and(|s| s.repeat) {
            index.entry(id).or_default().push(slots.len());
            slots.push(Some(node.clone()));
            continue;
        }
        let position = index.get(&id).and_then(|v| v.last().copied());
        let annotation = node.annotation.as_ref().map(|(a, _)| a.as_str());
        let remove = |slots: &mut Vec<Option<Node>>,
                      index: &mut std::collections::HashMap<Identity, Vec<usize>>,
                      i: usize| {
            slots[i] = None;
            if let Some(v) = index.get_mut(&id) {
                v.pop();
            }
        };
        match (annotation, position) {
            (Some("remove"), Some(i)) => remove(&mut slots, &mut index, i),
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
                let slot = slots[i].as_mut().expect("indexed slots are present");
                let old = std::mem::replace(slot, strip_annotation(node));
                inherit_history(slot, &old);
            }
            (_, None) => {
                if !unsets(node, spec) {
                    index.entry(id.clone()).or_default().push(slots.len());
                    slots.push(Some(strip_annotation(node)));
                }
            }
            (_, Some(i)) => {
                if unsets(node, spec) {
                    remove(&mut slots, &mut index, i);
                    continue;
                }
                let target = slots[i].as_mut().expect("indexed slots are present");
                let skip = usize::from(keyed);
                let old_values = &target.args[skip.min(target.args.len())..];
                let new_values = &node.args[skip.min(node.args.len())..];
                let first_changed = matches!((old_values.first(), new_values.first()), (Some(a), Some(b)) if a.value != b.value);
                if spec.is_none() || (first_changed && spec.is_some_and(|s| s.replace_on_change)) {
                    let old = std::mem::replace(target, strip_annotation(node));
                    inherit_history(target, &old);
                    continue;
                }
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
    *base = slots.into_iter().flatten().collect();
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
