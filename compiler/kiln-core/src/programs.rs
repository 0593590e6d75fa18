//! The program catalog: what kiln knows about each program `run` can start, as data
//! (`stdlib/programs.kdl`, plus the project's own `program` nodes): how `run` names it, the
//! kind of process it is, its command line, its options and their types, its probe and its
//! stop signal. `resolve` turns a `run` into a [`crate::model::Process`] through it.

use std::collections::BTreeMap;

use crate::diagnostic::Diagnostic;
use crate::model::ServiceKind;
use crate::schema;
use crate::syntax::{Node, Value};

/// The shipped catalog.
pub const STDLIB_PROGRAMS: &str = include_str!("../../../stdlib/programs.kdl");

/// One program.
#[derive(Clone, Debug)]
pub struct ProgramDef {
    /// Its name (`celery-worker`), what the model's `run.program` says.
    pub name: String,
    /// The words after `run` that select it (`celery worker`).
    pub run: Vec<String>,
    pub kind: ServiceKind,
    /// `python` when the image surely has Python.
    pub runtime: Option<String>,
    pub app: AppArg,
    /// The start of the command line, with `{app}`, `{host}`, `{port}`, `{command}`.
    pub argv: Vec<String>,
    /// In command-line order.
    pub options: Vec<OptionDef>,
    pub after: Vec<String>,
    pub probe: Option<String>,
    /// Probed over HTTP on the service's `health` path.
    pub http_health: bool,
    pub stop_signal: String,
    pub doc: String,
    /// Declared by the project (not the stdlib).
    pub project: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppArg {
    Required,
    Optional,
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionType {
    String,
    Int,
    Bool,
    Duration,
    List,
}

#[derive(Clone, Debug)]
pub struct OptionDef {
    pub name: String,
    pub ty: OptionType,
    pub flag: Option<String>,
    pub default: Option<serde_json::Value>,
    pub if_true: Option<String>,
    pub if_false: Option<String>,
    pub otherwise: Option<String>,
    pub join: Option<String>,
    pub doc: String,
}

impl ProgramDef {
    pub fn option(&self, name: &str) -> Option<&OptionDef> {
        self.options.iter().find(|o| o.name == name)
    }

    /// The option names `run` accepts: the declared ones, `app` (when it takes one) and `args`.
    pub fn option_names(&self) -> Vec<&str> {
        let mut names = Vec::new();
        if self.app != AppArg::None {
            names.push("app");
        }
        names.extend(self.options.iter().map(|o| o.name.as_str()));
        names.push("args");
        names
    }
}

/// A `program` node (already checked against [`schema::TOP`]) as a definition. `None`, with a
/// diagnostic, when it cannot be used.
pub fn from_node(node: &Node, project: bool, diags: &mut Vec<Diagnostic>) -> Option<ProgramDef> {
    let name = node.key()?;
    let text = |n: &str| {
        node.child(n)
            .and_then(|c| c.args.first())
            .and_then(|a| a.value.as_str())
            .map(str::to_owned)
    };
    let list = |n: &str| -> Vec<String> {
        node.child(n)
            .map(|c| c.args.iter().map(|a| a.value.to_text()).collect())
            .unwrap_or_default()
    };
    let kind = match text("kind").as_deref() {
        Some("web") => ServiceKind::Web,
        Some("worker") => ServiceKind::Worker,
        Some("beat") => ServiceKind::Beat,
        _ => ServiceKind::Task,
    };
    let argv = list("argv");
    if argv.is_empty() {
        diags.push(
            Diagnostic::error("missing-value", format!("program `{name}` has no `argv`"))
                .with_label(node.value_span(), "declared here")
                .with_help(
                    "write its command line: `argv \"myserver\" \"{app}\" \"--port={port}\"`",
                ),
        );
        return None;
    }
    let mut options = Vec::new();
    for o in node.children_named("option") {
        let Some(oname) = o.key() else { continue };
        let otext = |n: &str| {
            o.child(n)
                .and_then(|c| c.args.first())
                .and_then(|a| a.value.as_str())
                .map(str::to_owned)
        };
        let ty = match otext("type").as_deref() {
            Some("int") => OptionType::Int,
            Some("bool") => OptionType::Bool,
            Some("duration") => OptionType::Duration,
            Some("list") => OptionType::List,
            _ => OptionType::String,
        };
        let default = o
            .child("default")
            .and_then(|c| c.args.first())
            .map(|a| scalar(&a.value));
        options.push(OptionDef {
            name: oname,
            ty,
            flag: otext("flag"),
            default,
            if_true: otext("if-true"),
            if_false: otext("if-false"),
            otherwise: otext("otherwise"),
            join: otext("join"),
            doc: otext("doc").unwrap_or_default(),
        });
    }
    let run = match list("run") {
        words if words.is_empty() => vec![name.clone()],
        words => words,
    };
    Some(ProgramDef {
        run,
        kind,
        runtime: text("runtime").filter(|r| r != "other"),
        app: match text("app").as_deref() {
            Some("optional") => AppArg::Optional,
            Some("none") => AppArg::None,
            _ => AppArg::Required,
        },
        argv,
        options,
        after: list("after"),
        probe: text("probe"),
        http_health: text("health").map_or(kind == ServiceKind::Web, |h| h == "http"),
        stop_signal: text("stop-signal").unwrap_or_else(|| "SIGTERM".into()),
        doc: text("doc").unwrap_or_default(),
        project,
        name,
    })
}

fn scalar(v: &Value) -> serde_json::Value {
    match v {
        Value::Str(s) => serde_json::Value::from(s.clone()),
        Value::Int(i) => serde_json::Value::from(*i),
        Value::Float(f) => serde_json::Value::from(*f),
        Value::Bool(b) => serde_json::Value::from(*b),
        Value::Null => serde_json::Value::Null,
    }
}

/// The catalog: the stdlib's programs, then the project's (a project program may not take a
/// stdlib program's name or `run` words: it would change what existing specs mean).
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pub programs: BTreeMap<String, ProgramDef>,
}

impl Catalog {
    pub fn add(&mut self, def: ProgramDef, node: &Node, diags: &mut Vec<Diagnostic>) {
        let clash = self
            .programs
            .values()
            .find(|p| p.name == def.name || p.run == def.run)
            .map(|p| p.name.clone());
        if let Some(other) = clash {
            diags.push(
                Diagnostic::error(
                    "duplicate",
                    format!(
                        "program `{}` clashes with `{other}`, which the catalog already has",
                        def.name
                    ),
                )
                .with_label(node.value_span(), "declared here")
                .with_help("give it another name and other `run` words"),
            );
            return;
        }
        self.programs.insert(def.name.clone(), def);
    }

    /// The program `run` words select: the one whose `run` words are the longest prefix.
    pub fn select<'c>(&'c self, words: &[String]) -> Option<&'c ProgramDef> {
        self.programs
            .values()
            .filter(|p| words.len() >= p.run.len() && words[..p.run.len()] == p.run[..])
            .max_by_key(|p| p.run.len())
    }

    /// Every way `run` can start (for "did you mean"): the first `run` word of each program.
    pub fn first_words(&self) -> Vec<&str> {
        let mut words: Vec<&str> = self
            .programs
            .values()
            .filter_map(|p| p.run.first().map(String::as_str))
            .collect();
        words.sort_unstable();
        words.dedup();
        words
    }
}

/// The stdlib catalog, parsed (it is kiln's own file: a problem in it is a bug).
pub fn stdlib(sources: &mut crate::source::Sources, diags: &mut Vec<Diagnostic>) -> Catalog {
    let file = sources.add(
        "<stdlib>/programs.kdl",
        STDLIB_PROGRAMS,
        crate::source::Origin::Stdlib,
    );
    let (nodes, mut d) = crate::syntax::parse(sources, file);
    diags.append(&mut d);
    schema::check(&nodes, schema::TOP, None, "the program catalog", diags);
    let mut catalog = Catalog::default();
    for node in nodes.iter().filter(|n| n.name == "program") {
        if let Some(def) = from_node(node, false, diags) {
            catalog.add(def, node, diags);
        }
    }
    catalog
}

/// The catalog as the Markdown table docs/spec.md holds (checked by a test, so the docs cannot
/// drift from the declarations).
pub fn markdown_table(catalog: &Catalog) -> String {
    let mut out = String::from(
        "| program | written | kind | options (in command-line order; `args` is always accepted, appended last) | command line |\n|---|---|---|---|---|\n",
    );
    let mut programs: Vec<&ProgramDef> = catalog.programs.values().filter(|p| !p.project).collect();
    programs.sort_by(|a, b| a.name.cmp(&b.name));
    for p in programs {
        let kind = match p.kind {
            ServiceKind::Web => "web",
            ServiceKind::Worker => "worker",
            ServiceKind::Beat => "beat",
            ServiceKind::Task => "task",
        };
        let written = match p.app {
            AppArg::None if p.argv.iter().any(|a| a == "{command}") => {
                format!("`run {} \"…\"`", p.run.join(" "))
            }
            AppArg::None => format!("`run {}`", p.run.join(" ")),
            _ => format!("`run {} APP`", p.run.join(" ")),
        };
        let options: Vec<String> = p
            .options
            .iter()
            .map(|o| {
                let ty = match o.ty {
                    OptionType::String => "",
                    OptionType::Int => " (int)",
                    OptionType::Bool => " (bool)",
                    OptionType::Duration => " (duration)",
                    OptionType::List => " (list)",
                };
                format!("`{}`{ty}", o.name)
            })
            .collect();
        let mut line: Vec<String> = p.argv.clone();
        line.push("…".into());
        line.extend(p.after.iter().cloned());
        let mut notes = Vec::new();
        if let Some(probe) = &p.probe {
            notes.push(format!("probe: `{probe}`"));
        }
        if p.stop_signal != "SIGTERM" {
            notes.push(format!("stops on {}", p.stop_signal));
        }
        let line = line.join(" ").replace('|', "\\|");
        let notes = match notes.is_empty() {
            true => String::new(),
            false => format!("; {}", notes.join("; ").replace('|', "\\|")),
        };
        out.push_str(&format!(
            "| `{}` | {written} | {kind} | {} | `{line}`{notes} |\n",
            p.name,
            match options.is_empty() {
                true => "—".to_owned(),
                false => options.join(", "),
            }
        ));
    }
    out
}
