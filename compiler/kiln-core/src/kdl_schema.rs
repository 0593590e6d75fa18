//! The spec language as a [KDL Schema](https://github.com/kdl-org/kdl/blob/main/SCHEMA-SPEC.md)
//! document, generated from [`schema`](crate::schema): for editors and tools that read a
//! schema rather than talk to `kiln lsp`. `docs/schemas/kiln.kdl-schema.kdl` is its output,
//! kept up to date by a test.
//!
//! Settings can be written as a child node or as a property (`maxmemory "512mb"` or
//! `maxmemory="512mb"`), so each appears twice: as a `prop` and as a child `node`.

use std::fmt::Write;

use crate::schema::{self, NodeSpec, Ty, Values};

/// The whole language, as a KDL Schema document (KDL v2 syntax, like kiln's specs).
pub fn document() -> String {
    let mut out = String::new();
    out.push_str("// Generated from compiler/kiln-core/src/schema.rs; do not edit.\n");
    out.push_str("// Regenerate: KILN_UPDATE_SCHEMA=1 cargo test -p kiln-core kdl_schema\n");
    out.push_str("document {\n");
    out.push_str("    info {\n");
    out.push_str("        title \"kiln spec\" lang=en\n");
    out.push_str("        description \"The environment specs kiln compiles: kiln.kdl and the files it includes.\" lang=en\n");
    out.push_str("        link \"docs/spec.md\" rel=documentation\n");
    out.push_str("    }\n");
    for spec in schema::TOP {
        node(&mut out, spec, 1);
    }
    out.push_str("    other-nodes-allowed #false\n");
    out.push_str("}\n");
    out
}

fn quote(s: &str) -> String {
    // Rust's escapes for a string (`\"`, `\\`, `\n`, `\u{…}`) are KDL v2's.
    format!("{s:?}")
}

fn indent(out: &mut String, depth: usize) {
    out.push_str(&"    ".repeat(depth));
}

fn node(out: &mut String, spec: &NodeSpec, depth: usize) {
    indent(out, depth);
    let _ = writeln!(
        out,
        "node {} description={} {{",
        quote(spec.name),
        quote(spec.doc)
    );
    if !spec.repeat && spec.key.is_none() {
        indent(out, depth + 1);
        out.push_str("max 1\n");
    }
    if let Some(key) = spec.key {
        value(out, key, 1, Some(1), Some("the name"), depth + 1);
    }
    match spec.values {
        Values::None => {}
        Values::One(ty) => value(out, ty, 1, Some(1), None, depth + 1),
        Values::Optional(ty) => value(out, ty, 0, Some(1), None, depth + 1),
        Values::Many(ty) => value(out, ty, 1, None, None, depth + 1),
        Values::AnyNumber(ty) => value(out, ty, 0, None, None, depth + 1),
    }
    for setting in spec.children.iter().filter(|c| c.is_setting()) {
        prop(out, setting, depth + 1);
    }
    if spec.free.is_some() {
        // Children of any name may be written as properties too (`run … url-prefix="/x"`).
        indent(out, depth + 1);
        out.push_str("other-props-allowed #true\n");
    }
    if spec.name == "preset" && spec.children.is_empty() {
        // A preset's body is the body of the node kind it is for.
        for (name, doc) in [
            ("for", "The kind of node the preset is for."),
            ("extends", "The preset this one layers on."),
        ] {
            indent(out, depth + 1);
            let _ = writeln!(out, "prop {name:?} description={} {{", quote(doc));
            indent(out, depth + 2);
            out.push_str("type \"string\"\n");
            if name == "for" {
                indent(out, depth + 2);
                out.push_str("required #true\n");
                enumeration(out, schema::PRESET_KINDS, depth + 2);
            }
            indent(out, depth + 1);
            out.push_str("}\n");
        }
        indent(out, depth + 1);
        out.push_str("children {\n");
        indent(out, depth + 2);
        out.push_str("other-nodes-allowed #true\n");
        indent(out, depth + 1);
        out.push_str("}\n");
    } else if !spec.children.is_empty() || spec.free.is_some() {
        indent(out, depth + 1);
        out.push_str("children {\n");
        for child in spec.children {
            node(out, child, depth + 2);
        }
        if let Some(ty) = spec.free {
            // Children of any name, one value each (`env { DEBUG #false }`).
            indent(out, depth + 2);
            out.push_str("node description=\"A child of any name holding one value.\" {\n");
            value(out, ty, 1, Some(1), None, depth + 3);
            if spec.name == "env" {
                // A variable's value for one target (`LOG_FILE \"…\" systemd=\"…\"`).
                for target in schema::ENV_TARGETS {
                    indent(out, depth + 3);
                    let _ = writeln!(
                        out,
                        "prop {target:?} description=\"The value on the {target} target.\""
                    );
                }
            }
            indent(out, depth + 2);
            out.push_str("}\n");
        }
        indent(out, depth + 2);
        let _ = writeln!(out, "other-nodes-allowed {}", bool(spec.free.is_some()));
        indent(out, depth + 1);
        out.push_str("}\n");
    }
    indent(out, depth);
    out.push_str("}\n");
}

fn bool(b: bool) -> &'static str {
    if b { "#true" } else { "#false" }
}

fn prop(out: &mut String, spec: &NodeSpec, depth: usize) {
    let Some(ty) = spec.values.ty() else {
        return;
    };
    indent(out, depth);
    let _ = writeln!(
        out,
        "prop {} description={} {{",
        quote(spec.name),
        quote(spec.doc)
    );
    validations(out, ty, depth + 1);
    indent(out, depth);
    out.push_str("}\n");
}

fn value(
    out: &mut String,
    ty: Ty,
    min: usize,
    max: Option<usize>,
    what: Option<&str>,
    depth: usize,
) {
    indent(out, depth);
    let description = what.map_or_else(
        || schema::describe(ty),
        |w| format!("{w}: {}", schema::describe(ty)),
    );
    let _ = writeln!(out, "value description={} {{", quote(&description));
    indent(out, depth + 1);
    let _ = writeln!(out, "min {min}");
    if let Some(max) = max {
        indent(out, depth + 1);
        let _ = writeln!(out, "max {max}");
    }
    validations(out, ty, depth + 1);
    indent(out, depth);
    out.push_str("}\n");
}

fn enumeration(out: &mut String, options: &[&str], depth: usize) {
    indent(out, depth);
    out.push_str("enum");
    for o in options {
        let _ = write!(out, " {}", quote(o));
    }
    out.push('\n');
}

/// The type, format, pattern or values a KDL Schema can say of a kiln type.
fn validations(out: &mut String, ty: Ty, depth: usize) {
    let line = |out: &mut String, text: &str| {
        indent(out, depth);
        out.push_str(text);
        out.push('\n');
    };
    match ty {
        Ty::Str | Ty::Path | Ty::Rate | Ty::Cidr => line(out, "type \"string\""),
        Ty::Name => {
            line(out, "type \"string\"");
            line(out, "pattern \"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$\"");
        }
        Ty::Ident => {
            line(out, "type \"string\"");
            line(out, "pattern \"^[A-Za-z0-9_.-]+$\"");
        }
        Ty::EnvName => {
            line(out, "type \"string\"");
            line(out, "pattern \"^[A-Za-z_][A-Za-z0-9_]*$\"");
        }
        Ty::Host => {
            line(out, "type \"string\"");
            line(out, "format \"hostname\"");
        }
        Ty::Date => {
            line(out, "type \"string\"");
            line(out, "format \"date\"");
        }
        Ty::Int => {
            line(out, "type \"number\"");
            line(out, "format \"i64\"");
        }
        Ty::Port => {
            line(out, "type \"number\"");
            line(out, "format \"u16\"");
            line(out, "\">=\" 1");
        }
        Ty::Bool => line(out, "type \"boolean\""),
        Ty::Enum(options) => {
            line(out, "type \"string\"");
            enumeration(out, options, depth);
        }
        // A number or a string (`"0.5"`, `"512mb"`, `"60s"`, `"8000:8010"`), or anything.
        Ty::Number | Ty::Size | Ty::Duration | Ty::PortOrName | Ty::Scalar | Ty::ProgramOption => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMITTED: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/schemas/kiln.kdl-schema.kdl"
    );

    #[test]
    fn the_committed_schema_is_generated_from_the_table() {
        let generated = document();
        if std::env::var_os("KILN_UPDATE_SCHEMA").is_some() {
            std::fs::write(COMMITTED, &generated).expect("write the schema");
        }
        let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/schemas/kiln.kdl-schema.kdl is stale: run KILN_UPDATE_SCHEMA=1 cargo test -p kiln-core kdl_schema"
        );
    }

    #[test]
    fn the_schema_is_kdl_and_names_every_node() {
        let doc: kdl::KdlDocument = match document().parse() {
            Ok(doc) => doc,
            Err(e) => panic!(
                "not KDL v2: {:?}",
                e.diagnostics.first().map(|d| (d.span, &d.message))
            ),
        };
        let mut names = Vec::new();
        fn walk(doc: &kdl::KdlDocument, names: &mut Vec<String>) {
            for n in doc.nodes() {
                if n.name().value() == "node"
                    && let Some(name) = n.get(0).and_then(|v| v.as_string())
                {
                    names.push(name.to_owned());
                }
                if let Some(children) = n.children() {
                    walk(children, names);
                }
            }
        }
        walk(&doc, &mut names);
        fn every(specs: &[NodeSpec], out: &mut Vec<&'static str>) {
            for s in specs {
                out.push(s.name);
                every(s.children, out);
            }
        }
        let mut want = Vec::new();
        every(schema::TOP, &mut want);
        for name in want {
            assert!(names.iter().any(|n| n == name), "`{name}` in the schema");
        }
    }

    /// A reader of the schema as an editor would read it: node names, property names and
    /// enumerated values, level by level.
    fn conforms(
        level: &kdl::KdlNode,
        doc: &kdl::KdlDocument,
        path: &str,
        errors: &mut Vec<String>,
    ) {
        let Some(children) = level.children() else {
            return;
        };
        let decls: Vec<&kdl::KdlNode> = children
            .nodes()
            .iter()
            .filter(|n| n.name().value() == "node")
            .collect();
        let others = children
            .get("other-nodes-allowed")
            .and_then(|n| n.get(0))
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        for node in doc.nodes() {
            let name = node.name().value();
            let decl = decls
                .iter()
                .find(|d| d.get(0).and_then(|v| v.as_string()) == Some(name))
                .or_else(|| decls.iter().find(|d| d.get(0).is_none()));
            let Some(decl) = decl else {
                if !others {
                    errors.push(format!("{path}/{name}: not in the schema"));
                }
                continue;
            };
            let block = decl.children();
            for entry in node.entries() {
                let Some(prop) = entry.name() else { continue };
                let declared = block.and_then(|b| {
                    b.nodes().iter().find(|p| {
                        p.name().value() == "prop"
                            && p.get(0).and_then(|v| v.as_string()) == Some(prop.value())
                    })
                });
                let free = block
                    .and_then(|b| b.get("other-props-allowed"))
                    .and_then(|n| n.get(0))
                    .and_then(|v| v.as_bool())
                    .unwrap_or(false);
                match declared {
                    None if free => {}
                    None => errors.push(format!(
                        "{path}/{name}: property `{}` not in the schema",
                        prop.value()
                    )),
                    Some(p) => {
                        if let (Some(options), Some(value)) = (
                            p.children().and_then(|c| c.get("enum")),
                            entry.value().as_string(),
                        ) && !options
                            .entries()
                            .iter()
                            .any(|o| o.value().as_string() == Some(value))
                        {
                            errors.push(format!(
                                "{path}/{name}: `{}={value}` not among the schema's values",
                                prop.value()
                            ));
                        }
                    }
                }
            }
            if let (Some(kids), Some(block)) = (node.children(), block)
                && let Some(level) = block
                    .nodes()
                    .iter()
                    .find(|n| n.name().value() == "children")
            {
                let mut wrapper = kdl::KdlNode::new("level");
                wrapper.set_children(level.children().cloned().unwrap_or_default());
                conforms(&wrapper, kids, &format!("{path}/{name}"), errors);
            }
        }
    }

    #[test]
    fn every_fixture_conforms_to_the_schema() {
        let schema: kdl::KdlDocument = document().parse().expect("KDL");
        let top = schema.get("document").expect("a document node");
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures");
        let mut checked = 0;
        for entry in std::fs::read_dir(fixtures).expect("fixtures/") {
            let spec = entry.expect("entry").path().join("kiln.kdl");
            let Ok(text) = std::fs::read_to_string(&spec) else {
                continue;
            };
            let doc: kdl::KdlDocument = text.parse().expect("a fixture parses");
            let mut errors = Vec::new();
            conforms(top, &doc, "", &mut errors);
            assert!(errors.is_empty(), "{}: {errors:#?}", spec.display());
            checked += 1;
        }
        assert!(checked >= 5, "the fixtures were found");
        // And a spec that is wrong is found wrong.
        let bad: kdl::KdlDocument = "environment prod eviction=x {\n    rediss cache\n    redis cache eviction=sometimes\n}\n".parse().unwrap();
        let mut errors = Vec::new();
        conforms(top, &bad, "", &mut errors);
        assert_eq!(errors.len(), 3, "{errors:#?}");
    }
}
