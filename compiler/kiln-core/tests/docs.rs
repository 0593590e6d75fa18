//! docs/spec.md documents every node and setting of the language: each name in
//! the schema appears in it as `` `name` ``.

use kiln_core::schema::{self, NodeSpec};

fn collect(specs: &[NodeSpec], out: &mut Vec<&'static str>) {
    for s in specs {
        out.push(s.name);
        collect(s.children, out);
    }
}

#[test]
fn every_schema_node_is_documented() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/spec.md"))
        .expect("docs/spec.md");
    let mut names = Vec::new();
    collect(schema::TOP, &mut names);
    collect(schema::ENV_BODY, &mut names);
    names.sort();
    names.dedup();
    let missing: Vec<&str> = names
        .into_iter()
        .filter(|n| !doc.contains(&format!("`{n}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/spec.md does not document: {missing:?}"
    );
}

fn keys(v: &serde_json::Value, skip_children: bool, out: &mut std::collections::BTreeSet<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map {
                if !skip_children {
                    out.insert(k.clone());
                }
                // Maps keyed by user names (services, env, sites …): document their values, not their keys.
                let named = matches!(
                    k.as_str(),
                    "env"
                        | "secrets"
                        | "services"
                        | "postgres"
                        | "redis"
                        | "sites"
                        | "locations"
                        | "rate-limits"
                        | "headers"
                        | "allow"
                        | "settings"
                        | "volumes"
                        | "options"
                        | "modules"
                        | "rules"
                        | "depends-on"
                        | "jails"
                );
                match (named, child) {
                    (true, serde_json::Value::Object(entries)) => {
                        for entry in entries.values() {
                            keys(entry, false, out);
                        }
                    }
                    _ => keys(child, false, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| keys(i, false, out)),
        _ => {}
    }
}

#[test]
fn every_model_field_is_documented() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/model.md"))
        .expect("docs/model.md");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    let mut all = std::collections::BTreeSet::new();
    for project in ["tulia", "tdah", "taskassistant", "ascai"] {
        let root = dir.join(project);
        let mut loader = |p: &str| std::fs::read_to_string(root.join(p)).map_err(|e| e.to_string());
        let (project, _) = kiln_core::project::load(&mut loader);
        for env in project.compiled_environments() {
            if let (Some(model), _) = kiln_core::resolve::resolve(&project, env) {
                keys(&model.to_json(), false, &mut all);
            }
        }
    }
    let missing: Vec<&String> = all
        .iter()
        .filter(|k| !doc.contains(&format!("`{k}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/model.md does not document: {missing:?}"
    );
}

/// docs/spec.md's table of shipped programs is generated from the catalog
/// (`stdlib/programs.kdl`): `KILN_UPDATE_DOCS=1` rewrites it.
#[test]
fn the_program_table_is_the_catalog() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/spec.md");
    let doc = std::fs::read_to_string(path).expect("docs/spec.md");
    let (begin, end) = ("<!-- programs:begin -->\n", "<!-- programs:end -->");
    let start = doc.find(begin).expect("the programs:begin marker") + begin.len();
    let stop = doc.find(end).expect("the programs:end marker");
    let mut sources = kiln_core::source::Sources::new();
    let mut diags = Vec::new();
    let catalog = kiln_core::programs::stdlib(&mut sources, &mut diags);
    assert!(
        diags.is_empty(),
        "the stdlib catalog has problems: {diags:#?}"
    );
    let table = kiln_core::programs::markdown_table(&catalog);
    if std::env::var_os("KILN_UPDATE_DOCS").is_some() {
        let updated = format!("{}{table}{}", &doc[..start], &doc[stop..]);
        std::fs::write(path, updated).expect("write docs/spec.md");
        return;
    }
    assert_eq!(
        &doc[start..stop],
        table,
        "docs/spec.md's program table is stale: run the test with KILN_UPDATE_DOCS=1"
    );
}

/// docs/spec.md's reference tables are the schema's, regenerated (`KILN_UPDATE_DOCS=1`
/// writes them): a setting is documented by its declaration.
#[test]
fn the_reference_tables_are_generated_from_the_schema() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/spec.md");
    let doc = std::fs::read_to_string(path).expect("docs/spec.md");
    let marked = kiln_core::reference::mark(&doc);
    let generated =
        kiln_core::reference::update(&marked).expect("every marker names a schema node");
    if std::env::var_os("KILN_UPDATE_DOCS").is_some() {
        std::fs::write(path, &generated).expect("write docs/spec.md");
        return;
    }
    assert!(
        generated == doc,
        "docs/spec.md's reference tables are not the schema's: run KILN_UPDATE_DOCS=1 cargo test -p kiln-core --test docs"
    );
    // Every node table is marked, so none is left to drift by hand.
    let tables = doc
        .matches("| node | form | kind | type | description |")
        .count();
    let markers = doc.matches("<!-- schema: ").count();
    assert_eq!(
        tables, markers,
        "a node table of docs/spec.md has no schema marker"
    );
}
