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

/// Parses one KDL file. On a syntax error the tree is empty and every error
/// the KDL parser found is returned.
pub fn parse(sources: &Sources, file: FileId) -> (Vec<Node>, Vec<Diagnostic>) {
    let text = sources.get(file).text.clone();
    match text.parse::<kdl::KdlDocument>() {
        Ok(doc) => {
            let mut diags = Vec::new();
            let nodes = lower_document(&doc, file, &text, &mut diags);
            (nodes, diags)
        }
        Err(err) => {
            let diags = err
                .diagnostics
                .iter()
                .map(|d| syntax_diagnostic(d, file, &text))
                .collect();
            (Vec::new(), diags)
        }
    }
}

fn syntax_diagnostic(d: &kdl::KdlDiagnostic, file: FileId, text: &str) -> Diagnostic {
    let span = narrow(text, file, d.span.offset().min(text.len()), d.span.len());
    let message = d
        .message
        .clone()
        .unwrap_or_else(|| "invalid KDL".to_owned());
    let mut diag = Diagnostic::error("kdl-syntax", lowercase_first(message.trim_end_matches('.')))
        .with_label(span, d.label.clone().unwrap_or_default());
    let snippet = text
        .get(span.start as usize..span.end as usize)
        .unwrap_or("");
    let help = if snippet.starts_with(|c: char| c.is_ascii_digit())
        && snippet.contains(|c: char| c.is_ascii_alphabetic())
    {
        Some(format!(
            "a value with a unit is a string in KDL: write \"{snippet}\""
        ))
    } else {
        d.help.clone()
    };
    if let Some(help) = help {
        diag = diag.with_help(help);
    }
    diag.with_note("kiln specs are KDL v2 documents (https://kdl.dev)")
}

/// kdl sometimes blames a whole multi-line region; point at the token where it ends.
fn narrow(text: &str, file: FileId, start: usize, len: usize) -> Span {
    let end = (start + len).min(text.len());
    let region = text.get(start..end).unwrap_or("");
    if !region.trim_end().contains('\n') {
        return Span::new(file, start, end - start);
    }
    let bytes = text.as_bytes();
    let mut tok_end = end;
    while tok_end > start && bytes[tok_end - 1].is_ascii_whitespace() {
        tok_end -= 1;
    }
    while tok_end < text.len()
        && !bytes[tok_end].is_ascii_whitespace()
        && !matches!(bytes[tok_end], b'{' | b'}' | b';')
    {
        tok_end += 1;
    }
    let mut tok_start = tok_end;
    while tok_start > start
        && !bytes[tok_start - 1].is_ascii_whitespace()
        && bytes[tok_start - 1] != b'='
    {
        tok_start -= 1;
    }
    if tok_start == tok_end {
        return Span::new(file, start, end - start);
    }
    Span::new(file, tok_start, tok_end - tok_start)
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if !s.starts_with("KDL") => c.to_lowercase().chain(chars).collect(),
        _ => s.to_owned(),
    }
}

fn lower_document(
    doc: &kdl::KdlDocument,
    file: FileId,
    text: &str,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Node> {
    doc.nodes()
        .iter()
        .map(|n| lower_node(n, file, text, diags))
        .collect()
}

fn span_of(s: miette::SourceSpan, file: FileId) -> Span {
    Span::new(file, s.offset(), s.len())
}

fn lower_node(node: &kdl::KdlNode, file: FileId, text: &str, diags: &mut Vec<Diagnostic>) -> Node {
    let mut args = Vec::new();
    let mut children = Vec::new();
    for entry in node.entries() {
        let entry_span = span_of(entry.span(), file);
        if let Some(ty) = entry.ty() {
            diags.push(
                Diagnostic::error(
                    "invalid-annotation",
                    format!("type annotation `({})` on a value", ty.value()),
                )
                .with_label(span_of(ty.span(), file), "not allowed here")
                .with_help("annotations are only used on nodes: `(remove)` and `(replace)`"),
            );
        }
        let Some(value) = convert_value(entry.value(), entry_span, diags) else {
            continue;
        };
        match entry.name() {
            None => args.push(Scalar {
                value,
                span: entry_span,
            }),
            Some(key) => {
                let key_span = span_of(key.span(), file);
                let value_span = prop_value_span(text, entry_span, key_span);
                children.push(Node {
                    name: key.value().to_owned(),
                    name_span: key_span,
                    span: entry_span,
                    annotation: None,
                    args: vec![Scalar {
                        value,
                        span: value_span,
                    }],
                    children: Vec::new(),
                    from_prop: true,
                    layer: Layer::from(""),
                    overrides: Vec::new(),
                });
            }
        }
    }
    if let Some(doc) = node.children() {
        children.extend(lower_document(doc, file, text, diags));
    }
    Node {
        name: node.name().value().to_owned(),
        name_span: span_of(node.name().span(), file),
        span: span_of(node.span(), file),
        annotation: node
            .ty()
            .map(|t| (t.value().to_owned(), span_of(t.span(), file))),
        args,
        children,
        from_prop: false,
        layer: Layer::from(""),
        overrides: Vec::new(),
    }
}

/// The span of the value in a `key=value` entry.
fn prop_value_span(text: &str, entry: Span, key: Span) -> Span {
    let rest = text.get(key.end as usize..entry.end as usize).unwrap_or("");
    let skip = rest
        .char_indices()
        .find(|&(_, c)| c != '=' && !c.is_whitespace())
        .map_or(rest.len(), |(i, _)| i);
    Span {
        file: entry.file,
        start: key.end + skip as u32,
        end: entry.end,
    }
}

fn convert_value(value: &kdl::KdlValue, span: Span, diags: &mut Vec<Diagnostic>) -> Option<Value> {
    Some(match value {
        kdl::KdlValue::String(s) => {
            if let Some(c) = s
                .chars()
                .find(|&c| c.is_control() && c != '\n' && c != '\t')
            {
                diags.push(
                    Diagnostic::error(
                        "invalid-value",
                        format!("the string holds the control character U+{:04X}", c as u32),
                    )
                    .with_label(span, "not allowed in a value")
                    .with_help("generated files and the programs that read them cannot take control characters (only newlines and tabs); remove it"),
                );
            }
            Value::Str(s.clone())
        }
        kdl::KdlValue::Integer(i) => match i64::try_from(*i) {
            Ok(i) => Value::Int(i),
            Err(_) => {
                diags.push(
                    Diagnostic::error("invalid-value", "integer out of range")
                        .with_label(span, "does not fit in 64 bits")
                        .with_help("use a smaller number, or a string if this is not a number"),
                );
                return None;
            }
        },
        kdl::KdlValue::Float(f) => Value::Float(*f),
        kdl::KdlValue::Bool(b) => Value::Bool(*b),
        kdl::KdlValue::Null => Value::Null,
    })
}
