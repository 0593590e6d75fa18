//! A YAML document as a tree whose every node knows its line, from yaml-rust2's event
//! parser: `kiln import` reports what it could not map at the line that says it. Anchors,
//! aliases and merge keys (`<<: *common`, common in compose files) are resolved; the
//! expansion is bounded, so a file of nested aliases cannot grow without limit.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

#[derive(Clone, Debug)]
pub enum Value {
    Null,
    Scalar(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Clone, Debug)]
pub struct Node {
    pub value: Value,
    /// 1-based.
    pub line: usize,
}

impl Node {
    pub fn str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(s) => Some(s),
            _ => None,
        }
    }

    pub fn entries(&self) -> &[(Node, Node)] {
        match &self.value {
            Value::Map(m) => m,
            _ => &[],
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries()
            .iter()
            .find(|(k, _)| k.str() == Some(key))
            .map(|(_, v)| v)
    }
}

/// The most nodes a document may have once its aliases are expanded.
pub const MAX_NODES: usize = 1_000_000;

/// Why a document could not be read: the message and its line.
#[derive(Debug)]
pub struct Error {
    pub message: String,
    pub line: usize,
}

enum Frame {
    Seq {
        anchor: usize,
        line: usize,
        items: Vec<Node>,
    },
    Map {
        anchor: usize,
        line: usize,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    documents: Vec<Node>,
    nodes: usize,
    error: Option<Error>,
}

fn size(node: &Node) -> usize {
    1 + match &node.value {
        Value::Seq(items) => items.iter().map(size).sum(),
        Value::Map(entries) => entries.iter().map(|(k, v)| size(k) + size(v)).sum(),
        _ => 0,
    }
}

impl Builder {
    fn push(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.documents.push(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
    }
}

/// Merge keys: `<<: *base` (or a list of them) adds the entries the mapping does not have.
fn merge(entries: Vec<(Node, Node)>) -> Vec<(Node, Node)> {
    let (merges, mut own): (Vec<_>, Vec<_>) = entries
        .into_iter()
        .partition(|(k, _)| k.str() == Some("<<"));
    for (_, from) in merges {
        let sources: Vec<Node> = match from.value {
            Value::Seq(items) => items,
            _ => vec![from],
        };
        for source in sources {
            for (k, v) in source.entries() {
                if !own.iter().any(|(o, _)| o.str() == k.str()) {
                    own.push((k.clone(), v.clone()));
                }
            }
        }
    }
    own
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let line = mark.line();
        match event {
            Event::Scalar(text, style, anchor, _) => {
                let null = style == TScalarStyle::Plain
                    && matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL");
                let value = if null {
                    Value::Null
                } else {
                    Value::Scalar(text)
                };
                self.nodes += 1;
                self.push(Node { value, line }, anchor);
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq {
                anchor,
                line,
                items: Vec::new(),
            }),
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map {
                anchor,
                line,
                entries: Vec::new(),
                key: None,
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::Seq {
                        anchor,
                        line,
                        items,
                    }) => (
                        Node {
                            value: Value::Seq(items),
                            line,
                        },
                        anchor,
                    ),
                    Some(Frame::Map {
                        anchor,
                        line,
                        entries,
                        ..
                    }) => (
                        Node {
                            value: Value::Map(merge(entries)),
                            line,
                        },
                        anchor,
                    ),
                    None => return,
                };
                self.nodes += 1;
                self.push(node, anchor);
            }
            Event::Alias(id) => {
                let Some(node) = self.anchors.get(&id) else {
                    self.error = Some(Error {
                        message: "an alias to an anchor that is not defined".into(),
                        line,
                    });
                    return;
                };
                self.nodes += size(node);
                if self.nodes > MAX_NODES {
                    self.error = Some(Error {
                        message: format!(
                            "more than {MAX_NODES} nodes once its aliases are expanded"
                        ),
                        line,
                    });
                    return;
                }
                let node = Node {
                    line,
                    ..node.clone()
                };
                self.push(node, 0);
            }
            _ => {}
        }
    }
}

/// The first document of `text`.
pub fn parse(text: &str) -> Result<Node, Error> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, false).map_err(|e| Error {
        message: e.info().to_owned(),
        line: e.marker().line(),
    })?;
    if let Some(e) = builder.error {
        return Err(e);
    }
    builder.documents.into_iter().next().ok_or(Error {
        message: "the file holds no YAML document".into(),
        line: 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_anchors_and_merge_keys() {
        let doc = parse("a: &base\n  x: 1\n  y: 2\nb:\n  <<: *base\n  y: 3\nc:\n").unwrap();
        let b = doc.get("b").unwrap();
        assert_eq!(b.get("x").and_then(Node::str), Some("1"));
        assert_eq!(b.get("y").and_then(Node::str), Some("3"));
        assert_eq!(doc.get("b").unwrap().get("y").unwrap().line, 6);
        assert!(matches!(doc.get("c").unwrap().value, Value::Null));
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = parse(&text).unwrap_err();
        assert!(e.message.contains("aliases"), "{e:?}");
    }
}
