//! The spec language at the cursor: which schema level the open blocks lead to, and what a
//! node, a setting or a value there means. Everything comes from `kiln_core::schema`, the
//! table validation and the language reference read.

use kiln_core::schema::{self, NodeSpec, Ty};

use super::scan::{Context, Frame, Role};

/// A level of the schema: the nodes allowed there, and the type of free children (`env`).
#[derive(Clone, Copy)]
pub struct Level {
    pub specs: &'static [NodeSpec],
    pub free: Option<Ty>,
}

/// The level inside the open blocks `parents`; `None` inside an unknown node.
pub fn level(parents: &[Frame]) -> Option<Level> {
    let mut level = Level {
        specs: schema::TOP,
        free: None,
    };
    for (depth, f) in parents.iter().enumerate() {
        let spec = level.specs.iter().find(|s| s.name == f.name)?;
        level = if depth == 0 && spec.name == "preset" {
            Level {
                specs: schema::preset_body(f.prop("for")?)?,
                free: None,
            }
        } else {
            Level {
                specs: spec.children,
                free: spec.free,
            }
        };
    }
    Some(level)
}

/// The schema of the node the cursor's statement is.
pub fn node_spec(ctx: &Context) -> Option<&'static NodeSpec> {
    let node = ctx.node.as_ref()?;
    level(&ctx.parents)?
        .specs
        .iter()
        .find(|s| s.name == node.name)
}

/// The setting a property of `spec` names (`maxmemory` of `redis`).
pub fn prop_spec(spec: &'static NodeSpec, prop: &str) -> Option<&'static NodeSpec> {
    spec.child(prop).filter(|c| c.is_setting())
}

/// The type of argument `n` of a node.
pub fn argument_ty(spec: &NodeSpec, n: usize) -> Option<Ty> {
    match (spec.key, n) {
        (Some(key), 0) => Some(key),
        _ => spec.values.ty(),
    }
}

/// The type the value under the cursor must have, when the schema says.
pub fn value_ty(ctx: &Context) -> Option<Ty> {
    let spec = node_spec(ctx)?;
    match &ctx.role {
        Role::PropValue(prop) => prop_spec(spec, prop)?.values.ty(),
        Role::Argument(n) => argument_ty(spec, *n),
        Role::Entry => argument_ty(spec, ctx.node.as_ref().map_or(0, |n| n.args.len())),
        _ => None,
    }
}

/// The words a value of `ty` can be, when they are few.
pub fn choices(ty: Ty) -> &'static [&'static str] {
    match ty {
        Ty::Enum(options) => options,
        Ty::Bool => &["#true", "#false"],
        _ => &[],
    }
}

/// A node's signature: `redis NAME`, `maxmemory SIZE`.
pub fn signature(spec: &NodeSpec) -> String {
    let mut sig = format!("`{}`", spec.name);
    if spec.key.is_some() {
        sig.push_str(" NAME");
    }
    if let Some(ty) = spec.values.ty() {
        sig.push_str(&format!(" — {}", schema::describe(ty)));
    }
    if !spec.children.is_empty() || spec.free.is_some() {
        sig.push_str(" `{ … }`");
    }
    sig
}

/// Markdown documentation of a node or setting.
pub fn documentation(spec: &NodeSpec) -> String {
    format!("{}\n\n{}", signature(spec), spec.doc)
}
