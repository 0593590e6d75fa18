//! KDL text → a generic, span-carrying [`Node`] tree.
//!
//! Properties are normalised into child nodes: `redis cache maxmemory="512mb"`
//! and `redis cache { maxmemory "512mb" }` produce the same tree, so every
//! later stage (schema, layering, lowering) has one shape to deal with.

use crate::diagnostic::Diagnostic;
use crate::source::{FileId, Sources, Span};
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "a string",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Bool(_) => "a boolean",
            Value::Null => "#null",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as text, as it would be written into an environment file.
    pub fn to_text(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => String::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Scalar {
    pub value: Value,
    pub span: Span,
}

/// Where a node came from in the layering: an environment or a preset.
pub type Layer = Arc<str>;

#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    pub name_span: Span,
    /// The whole node (for a property: the `key=value` entry).
    pub span: Span,
    /// A `(remove)` / `(replace)` annotation.
    pub annotation: Option<(String, Span)>,
    pub args: Vec<Scalar>,
    pub children: Vec<Node>,
    /// Written as a property of its parent (`key=value`).
    pub from_prop: bool,
    /// The layer that set this node (filled in by layering).
    pub layer: Layer,
    /// Earlier definitions this one overrode, most recent first.
    pub overrides: Vec<(Span, Layer)>,
}

impl Node {
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().rev().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    pub fn arg(&self, i: usize) -> Option<&Scalar> {
        self.args.get(i)
    }

    /// The node's key, when its first argument names it (`service web`).
    pub fn key(&self) -> Option<String> {
        self.args.first().map(|a| a.value.to_text())
    }

    /// Span to blame for this node's value: its first argument, else its name.
    pub fn value_span(&self) -> Span {
        self.args.first().map_or(self.name_span, |a| a.span)
    }

    pub fn set_layer(&mut self, layer: &Layer) {
        self.layer = layer.clone();
        for child in &mut self.children {
            child.set_layer(layer);
        }
    }
}

/// Parses one KDL file ([`crate::reader`]). On a syntax error the tree is empty and the
/// error is the one diagnostic.
pub fn parse(sources: &Sources, file: FileId) -> (Vec<Node>, Vec<Diagnostic>) {
    let text = sources.get(file).text.clone();
    match crate::reader::read(&text, file) {
        Ok((nodes, diags)) => (nodes, diags),
        Err(e) => {
            let span = Span::new(file, e.start, e.end - e.start);
            let mut d = Diagnostic::error("kdl-syntax", e.message).with_label(span, e.label);
            if let Some(help) = e.help {
                d = d.with_help(help);
            }
            (
                Vec::new(),
                vec![d.with_note("kiln specs are KDL v2 documents (https://kdl.dev)")],
            )
        }
    }
}
