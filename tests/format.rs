//! `kiln fmt`: formatting keeps the meaning (parse → format → parse gives the
//! same tree) and is idempotent, on every fixture and on generated documents.

mod common;

use kiln_core::source::{Origin, Sources};
use kiln_core::syntax::{self, Node};
use proptest::prelude::*;

/// The tree without spans or layers.
fn shape(nodes: &[Node]) -> String {
    let mut out = String::new();
    for n in nodes {
        out.push_str(&format!(
            "{:?}{} {:?} [",
            n.annotation.as_ref().map(|a| &a.0),
            n.name,
            n.args.iter().map(|a| &a.value).collect::<Vec<_>>()
        ));
        out.push_str(&shape(&n.children));
        out.push_str("] ");
    }
    out
}

fn parse_shape(text: &str) -> Option<String> {
    let mut sources = Sources::new();
    let id = sources.add("kiln.kdl", text, Origin::Project);
    let (nodes, diags) = syntax::parse(&sources, id);
    diags.is_empty().then(|| shape(&nodes))
}

fn check(text: &str) -> Result<(), String> {
    let Some(before) = parse_shape(text) else {
        return Ok(());
    }; // not KDL: fmt refuses it
    let formatted = kiln::format::format_kdl(text)?;
    let after = parse_shape(&formatted).ok_or("formatted output does not parse")?;
    if before != after {
        return Err(format!("meaning changed:\n{formatted}"));
    }
    let again = kiln::format::format_kdl(&formatted)?;
    if again != formatted {
        return Err(format!("not idempotent:\n{formatted}\n---\n{again}"));
    }
    Ok(())
}

#[test]
fn fixtures_format_round_trip() {
    for path in common::spec_files() {
        let text = std::fs::read_to_string(&path).expect("readable");
        if let Err(e) = check(&text) {
            panic!("{}: {e}", path.display());
        }
    }
}

fn ident() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,6}"
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 ./:-]{0,10}".prop_map(|s| format!("{s:?}")),
        (-1000i64..1000).prop_map(|i| i.to_string()),
        Just("#true".to_owned()),
        Just("#false".to_owned()),
        Just("#null".to_owned()),
    ]
}

fn node(depth: u32) -> BoxedStrategy<String> {
    let leaf = (
        ident(),
        proptest::collection::vec(value(), 0..3),
        proptest::collection::vec((ident(), value()), 0..2),
    )
        .prop_map(|(n, args, props)| {
            let mut s = n;
            for a in args {
                s.push(' ');
                s.push_str(&a);
            }
            for (k, v) in props {
                s.push_str(&format!(" {k}={v}"));
            }
            s
        });
    if depth == 0 {
        return leaf.boxed();
    }
    (leaf, proptest::collection::vec(node(depth - 1), 0..3))
        .prop_map(|(head, kids)| {
            if kids.is_empty() {
                head
            } else {
                format!("{head} {{\n{}\n}}", kids.join("\n"))
            }
        })
        .boxed()
}

proptest! {
    #[test]
    fn generated_documents_round_trip(nodes in proptest::collection::vec(node(2), 1..5), comment in any::<bool>()) {
        let mut text = nodes.join("\n");
        if comment {
            text.insert_str(0, "// a comment\n");
        }
        text.push('\n');
        prop_assert!(check(&text).is_ok(), "{}", check(&text).unwrap_err());
    }
}
