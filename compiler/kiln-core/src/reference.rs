//! The reference tables of docs/spec.md, from the schema: one row per node or setting (its
//! form, kind, type and documentation). Each table in docs/spec.md follows a marker naming
//! the schema node whose children it lists (`<!-- schema: environment/site/gzip -->`);
//! [`update`] rewrites every marked table, and a test keeps docs/spec.md equal to it, so a
//! new setting is documented by its declaration alone.

use crate::schema::{self, NodeSpec, Ty, Values};

/// The word a table uses for a type.
fn type_word(ty: Ty) -> String {
    match ty {
        Ty::Str => "string".into(),
        Ty::Name => "name".into(),
        Ty::Ident => "identifier".into(),
        Ty::EnvName => "variable-name".into(),
        Ty::Int => "integer".into(),
        Ty::Bool => "bool".into(),
        Ty::Number => "number".into(),
        Ty::Size => "size".into(),
        Ty::Duration => "duration".into(),
        Ty::Port => "port".into(),
        Ty::Path => "path".into(),
        Ty::Host => "host".into(),
        Ty::Cidr => "cidr".into(),
        Ty::Rate => "rate".into(),
        Ty::Date => "date".into(),
        Ty::Scalar => "scalar".into(),
        Ty::ProgramOption => "option".into(),
        Ty::PortOrName => "port-or-name".into(),
        Ty::Enum(options) => options
            .iter()
            .map(|o| format!("`{o}`"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// A value's placeholder in a form: `<integer>`, `<enum>`.
fn placeholder(ty: Ty) -> String {
    match ty {
        Ty::Enum(_) => "<enum>".into(),
        ty => format!("<{}>", type_word(ty)),
    }
}

/// A name's placeholder: `NAME`, `HOST`, `VARIABLE_NAME`.
fn key_placeholder(ty: Ty) -> String {
    match ty {
        Ty::Name | Ty::Ident => "NAME".into(),
        Ty::EnvName => "VARIABLE_NAME".into(),
        Ty::Host => "HOST".into(),
        Ty::Str => "STRING".into(),
        Ty::PortOrName => "PORT_OR_NAME".into(),
        ty => placeholder(ty),
    }
}

/// One row: `` | `name` | form | kind | type | description | ``.
pub fn row(spec: &NodeSpec) -> String {
    let name = spec.name;
    let body = !spec.children.is_empty() || spec.free.is_some();
    let value = spec.values.ty();
    let (form, kind, ty) = match (spec.key, spec.values) {
        (Some(key), values) => {
            let mut form = format!("{name} {}", key_placeholder(key));
            if let Some(t) = values.ty() {
                form.push_str(&format!(" {}", placeholder(t)));
            }
            if body {
                form.push_str(" { … }");
            }
            let kind = if spec.repeat {
                "repeatable block"
            } else {
                "named block"
            };
            let ty = match (spec.free, value, key) {
                (Some(free), ..) => format!("children: {}", type_word(free)),
                (None, Some(t), _) => type_word(t),
                (None, None, Ty::Enum(_)) => type_word(key),
                (None, None, _) => "—".into(),
            };
            (form, kind, ty)
        }
        (None, Values::None) if spec.free.is_some() => (
            format!("{name} {{ … }}"),
            "map",
            format!("children: {}", type_word(spec.free.unwrap_or(Ty::Scalar))),
        ),
        (None, Values::None) => (format!("{name} {{ … }}"), "block", "—".into()),
        (None, values) if body => {
            let t = values.ty().unwrap_or(Ty::Str);
            let form = match values {
                Values::Optional(_) => format!("{name} [{}] {{ … }}", placeholder(t)),
                Values::Many(_) | Values::AnyNumber(_) => {
                    format!("{name} {}… {{ … }}", placeholder(t))
                }
                _ => format!("{name} {} {{ … }}", placeholder(t)),
            };
            (form, "block", type_word(t))
        }
        (None, values) => {
            let t = values.ty().unwrap_or(Ty::Str);
            match values {
                Values::Many(_) | Values::AnyNumber(_) => {
                    (format!("{name} {}…", placeholder(t)), "list", type_word(t))
                }
                _ => (
                    format!("{name} {}", placeholder(t)),
                    "setting",
                    type_word(t),
                ),
            }
        }
    };
    format!("| `{name}` | `{form}` | {kind} | {ty} | {} |", spec.doc)
}

/// The table of a level's nodes.
pub fn table(specs: &[NodeSpec]) -> String {
    let mut out =
        String::from("| node | form | kind | type | description |\n|---|---|---|---|---|\n");
    for s in specs {
        out.push_str(&row(s));
        out.push('\n');
    }
    out
}

/// The nodes under a schema path (`PATH+`: the same, for a table that lists the node too).
pub fn level(path: &str) -> Option<&'static [NodeSpec]> {
    schema::level(path.strip_suffix('+').unwrap_or(path))
}

const MARKER: &str = "<!-- schema: ";

/// docs/spec.md with every marked table regenerated. `Err` names a marker whose path is not
/// a schema node. `PATH+` lists the node itself, then its children.
pub fn update(doc: &str) -> Result<String, String> {
    let mut out = String::with_capacity(doc.len());
    let mut lines = doc.split_inclusive('\n').peekable();
    while let Some(line) = lines.next() {
        out.push_str(line);
        let marked = line
            .trim()
            .strip_prefix(MARKER)
            .and_then(|r| r.strip_suffix(" -->"));
        let Some(path) = marked else {
            continue;
        };
        let missing = || format!("docs/spec.md: `{path}` is not a schema node");
        let specs = level(path).ok_or_else(missing)?;
        // The old table, if any, goes.
        while lines.peek().is_some_and(|l| l.starts_with('|')) {
            lines.next();
        }
        let mut text = table(specs);
        if let Some(node) = path.strip_suffix('+') {
            let (parent, name) = node.rsplit_once('/').unwrap_or(("top", node));
            let own = level(parent)
                .and_then(|l| l.iter().find(|s| s.name == name))
                .ok_or_else(missing)?;
            let header = text.match_indices('\n').nth(1).map_or(0, |(i, _)| i + 1);
            text.insert_str(header, &format!("{}\n", row(own)));
        }
        out.push_str(&text);
    }
    Ok(out)
}

/// Every level of the schema with its path, outermost first.
fn levels() -> Vec<(String, &'static [NodeSpec])> {
    fn walk(path: &str, specs: &'static [NodeSpec], out: &mut Vec<(String, &'static [NodeSpec])>) {
        for s in specs {
            if !s.children.is_empty() {
                let p = if path.is_empty() {
                    s.name.to_owned()
                } else {
                    format!("{path}/{}", s.name)
                };
                out.push((p.clone(), s.children));
                walk(&p, s.children, out);
            }
        }
    }
    let mut out = vec![("top".to_owned(), schema::TOP)];
    walk("", schema::TOP, &mut out);
    out
}

/// docs/spec.md with a marker before each node table that has none, naming the schema level
/// whose nodes the table lists, in order (for a section written by hand).
pub fn mark(doc: &str) -> String {
    let levels = levels();
    let lines: Vec<&str> = doc.split_inclusive('\n').collect();
    let mut out = String::with_capacity(doc.len());
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let starts_table = line.starts_with("| node | form | kind | type | description |")
            && !(i > 0 && lines[i - 1].trim().starts_with(MARKER));
        if starts_table {
            let names: Vec<&str> = lines[i + 2..]
                .iter()
                .take_while(|l| l.starts_with('|'))
                .filter_map(|l| l.split('`').nth(1))
                .collect();
            let found = levels
                .iter()
                .find(|(_, specs)| specs.iter().map(|s| s.name).eq(names.iter().copied()));
            if let Some((path, _)) = found {
                out.push_str(&format!("{MARKER}{path} -->\n"));
            }
        }
        out.push_str(line);
        i += 1;
    }
    out
}
