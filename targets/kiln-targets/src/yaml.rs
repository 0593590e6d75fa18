//! YAML emission that means the same to YAML 1.1 and 1.2 readers.
//!
//! A small emitter over an ordered tree ([`Node`]) instead of a serde-based crate:
//! every node carries the model pointers it came from, and every output line is
//! recorded with them through [`Writer`] (what `kiln explain` and `kiln diff`
//! read). No YAML crate offers per-line provenance, and the subset kiln needs is
//! small: block style only, two-space indentation, sequences indented under their
//! key, no anchors, tags or flow collections (except the empty `{}` and `[]`).
//!
//! Scalars are written plain only when plainly safe ([`is_plain_safe`]): that rules
//! out everything a YAML 1.1 reader (PyYAML, Go's yaml.v2) would resolve to a bool,
//! number, null, timestamp or merge key, and everything a 1.2 reader would not read
//! back as the same string. Everything else is double-quoted, or written as a literal
//! block (`|`) when it is multi-line text such as a config file in a ConfigMap.
//! Map keys go through the same rule, and a map never holds a key twice (setting a
//! key again replaces its value), so duplicate keys cannot be emitted.

use crate::Writer;

/// A YAML value with the model pointers behind it and comments to print above it.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    /// JSON pointers into the model; lines of a node without any inherit its parent's.
    pub from: Vec<String>,
    /// Comment lines printed above the node (without `# `).
    pub comments: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl Node {
    fn of(value: Value) -> Node {
        Node {
            value,
            from: Vec::new(),
            comments: Vec::new(),
        }
    }

    pub fn str(s: impl Into<String>) -> Node {
        Node::of(Value::Str(s.into()))
    }

    pub fn int(i: impl Into<i64>) -> Node {
        Node::of(Value::Int(i.into()))
    }

    pub fn bool(b: bool) -> Node {
        Node::of(Value::Bool(b))
    }

    pub fn null() -> Node {
        Node::of(Value::Null)
    }

    pub fn map() -> Node {
        Node::of(Value::Map(Vec::new()))
    }

    pub fn seq() -> Node {
        Node::of(Value::Seq(Vec::new()))
    }

    /// A sequence of strings.
    pub fn strs<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Node {
        Node::of(Value::Seq(items.into_iter().map(Node::str).collect()))
    }

    /// Adds model pointers behind this node.
    pub fn from(mut self, pointers: &[&str]) -> Node {
        for p in pointers {
            if !self.from.iter().any(|q| q == p) {
                self.from.push((*p).to_owned());
            }
        }
        self
    }

    /// Adds model pointers behind this node.
    pub fn from_all<S: AsRef<str>>(self, pointers: impl IntoIterator<Item = S>) -> Node {
        let owned: Vec<S> = pointers.into_iter().collect();
        let refs: Vec<&str> = owned.iter().map(AsRef::as_ref).collect();
        self.from(&refs)
    }

    /// Adds a comment line above the node.
    pub fn comment(mut self, text: impl AsRef<str>) -> Node {
        self.comments
            .extend(text.as_ref().lines().map(str::to_owned));
        self
    }

    /// Sets `key` in a map, replacing the value it had.
    pub fn set(&mut self, key: impl Into<String>, node: Node) {
        let key = key.into();
        match &mut self.value {
            Value::Map(entries) => match entries.iter_mut().find(|(k, _)| *k == key) {
                Some(entry) => entry.1 = node,
                None => entries.push((key, node)),
            },
            other => panic!("set `{key}` on a non-map YAML node: {other:?}"),
        }
    }

    /// Builder form of [`Node::set`].
    pub fn with(mut self, key: impl Into<String>, node: Node) -> Node {
        self.set(key, node);
        self
    }

    /// Appends an item to a sequence.
    pub fn push(&mut self, node: Node) {
        match &mut self.value {
            Value::Seq(items) => items.push(node),
            other => panic!("push onto a non-sequence YAML node: {other:?}"),
        }
    }

    /// Builder form of [`Node::push`].
    pub fn item(mut self, node: Node) -> Node {
        self.push(node);
        self
    }

    /// The value under `key` of a map.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The map under `key`, created empty when missing.
    pub fn entry(&mut self, key: &str) -> &mut Node {
        if self.get(key).is_none() {
            self.set(key, Node::map());
        }
        match &mut self.value {
            Value::Map(entries) => {
                &mut entries
                    .iter_mut()
                    .find(|(k, _)| k == key)
                    .expect("just set")
                    .1
            }
            _ => unreachable!("entry() on a map"),
        }
    }

    /// `true` for an empty map or sequence.
    pub fn is_empty(&self) -> bool {
        match &self.value {
            Value::Seq(items) => items.is_empty(),
            Value::Map(entries) => entries.is_empty(),
            _ => false,
        }
    }
}

/// Writes `root` (a map) as a YAML document, one line at a time with its provenance.
pub fn write(w: &mut Writer, root: &Node) {
    let mut lines = Vec::new();
    match &root.value {
        Value::Map(_) | Value::Seq(_) if !root.is_empty() => {
            for c in &root.comments {
                lines.push(Line {
                    text: comment(0, c),
                    from: root.from.clone(),
                });
            }
            block(root, 0, &root.from, &mut lines);
        }
        _ => panic!("a YAML document must be a non-empty map or sequence"),
    }
    for l in lines {
        let from: Vec<&str> = l.from.iter().map(String::as_str).collect();
        w.line(l.text, &from);
    }
}

struct Line {
    text: String,
    from: Vec<String>,
}

fn comment(indent: usize, text: &str) -> String {
    if text.is_empty() {
        format!("{}#", pad(indent))
    } else {
        format!("{}# {text}", pad(indent))
    }
}

fn pad(n: usize) -> String {
    " ".repeat(n)
}

/// The entries of a non-empty map or the items of a non-empty sequence, at `indent`.
fn block(node: &Node, indent: usize, inherited: &[String], out: &mut Vec<Line>) {
    let from = if node.from.is_empty() {
        inherited
    } else {
        &node.from
    };
    match &node.value {
        Value::Map(entries) => {
            for (key, child) in entries {
                let cfrom: Vec<String> = if child.from.is_empty() {
                    from.to_vec()
                } else {
                    child.from.clone()
                };
                for c in &child.comments {
                    out.push(Line {
                        text: comment(indent, c),
                        from: cfrom.clone(),
                    });
                }
                let head = format!("{}{}:", pad(indent), scalar(key));
                value_after(head, child, indent, &cfrom, out);
            }
        }
        Value::Seq(items) => {
            for child in items {
                let cfrom: Vec<String> = if child.from.is_empty() {
                    from.to_vec()
                } else {
                    child.from.clone()
                };
                for c in &child.comments {
                    out.push(Line {
                        text: comment(indent, c),
                        from: cfrom.clone(),
                    });
                }
                match &child.value {
                    Value::Map(_) if !child.is_empty() => {
                        // `- first: entry` on one line, the other entries under it.
                        let start = out.len();
                        block(child, indent + 2, &cfrom, out);
                        let first = out[start..]
                            .iter_mut()
                            .find(|l| !l.text.trim_start().starts_with('#'))
                            .expect("a non-empty map has an entry line");
                        first.text = format!("{}- {}", pad(indent), &first.text[indent + 2..]);
                    }
                    _ => value_after(format!("{}-", pad(indent)), child, indent, &cfrom, out),
                }
            }
        }
        _ => unreachable!("block() of a scalar"),
    }
}

/// Writes `child` after `head` (`key:` or `-`), nested blocks below it.
fn value_after(head: String, child: &Node, indent: usize, from: &[String], out: &mut Vec<Line>) {
    match &child.value {
        Value::Map(_) | Value::Seq(_) if child.is_empty() => {
            let empty = if matches!(child.value, Value::Map(_)) {
                "{}"
            } else {
                "[]"
            };
            out.push(Line {
                text: format!("{head} {empty}"),
                from: from.to_vec(),
            });
        }
        Value::Map(_) | Value::Seq(_) => {
            out.push(Line {
                text: head,
                from: from.to_vec(),
            });
            block(child, indent + 2, from, out);
        }
        Value::Str(s) => match literal_block(s) {
            Some((indicator, body)) => {
                out.push(Line {
                    text: format!("{head} {indicator}"),
                    from: from.to_vec(),
                });
                for l in body {
                    let text = if l.is_empty() {
                        String::new()
                    } else {
                        format!("{}{l}", pad(indent + 2))
                    };
                    out.push(Line {
                        text,
                        from: from.to_vec(),
                    });
                }
            }
            None => out.push(Line {
                text: format!("{head} {}", scalar(s)),
                from: from.to_vec(),
            }),
        },
        Value::Null => out.push(Line {
            text: format!("{head} null"),
            from: from.to_vec(),
        }),
        Value::Bool(b) => out.push(Line {
            text: format!("{head} {b}"),
            from: from.to_vec(),
        }),
        Value::Int(i) => out.push(Line {
            text: format!("{head} {i}"),
            from: from.to_vec(),
        }),
    }
}

/// Multi-line text as a literal block: the chomping indicator and the lines, when the
/// text survives it unchanged (no trailing spaces, which [`Writer`] trims; no tabs or
/// unprintable characters; no leading space that would confuse indentation detection;
/// at most one final newline).
fn literal_block(s: &str) -> Option<(&'static str, Vec<&str>)> {
    if !s.contains('\n') || s.ends_with("\n\n") {
        return None;
    }
    if s.chars()
        .any(|c| c != '\n' && (c == '\t' || c == '\r' || needs_escape(c)))
    {
        return None;
    }
    let (body, indicator) = match s.strip_suffix('\n') {
        Some(b) => (b, "|"),
        None => (s, "|-"),
    };
    let lines: Vec<&str> = body.split('\n').collect();
    let first = lines.iter().find(|l| !l.is_empty())?;
    if first.starts_with(' ') || lines.iter().any(|l| l.ends_with(' ')) {
        return None;
    }
    Some((indicator, lines))
}

/// A string as a YAML scalar: plain when [`is_plain_safe`], double-quoted otherwise.
pub fn scalar(s: &str) -> String {
    if is_plain_safe(s) {
        s.to_owned()
    } else {
        double_quoted(s)
    }
}

/// Words YAML 1.1 reads as booleans or null (any case is quoted, to be safe).
const RESERVED_WORDS: &[&str] = &["y", "n", "yes", "no", "on", "off", "true", "false", "null"];

/// `true` when `s` written plain reads back as the same string in YAML 1.1 and 1.2.
///
/// Deliberately conservative: it starts with a letter, `/`, `_`, `$`, or `-` followed by a
/// letter or `-` (command-line flags), so nothing number-like (digits, `+`, `.`, `-1`,
/// `.inf`, `1e3`, `0755`, `22:22`, `2024-01-01`) and no indicator (`-`, `?`, `:`, `#`,
/// `&`, `*`, `!`, `|`, `>`, `'`, `"`, `%`, `@`, `` ` ``, `~`, `<<`, `=`) can start it; it is
/// printable ASCII without `#`, flow indicators or `": "`, does not end with a space or `:`,
/// and is not a YAML 1.1 boolean or null word.
pub fn is_plain_safe(s: &str) -> bool {
    let b = s.as_bytes();
    let Some(&first) = b.first() else {
        return false;
    };
    let first_ok = first.is_ascii_alphabetic()
        || matches!(first, b'/' | b'_' | b'$')
        || (first == b'-'
            && b.get(1)
                .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'-')
            && !s.starts_with("---"));
    first_ok
        && b.iter()
            .all(|c| (0x20..0x7f).contains(c) && !b"#,[]{}".contains(c))
        && !s.ends_with(' ')
        && !s.ends_with(':')
        && !s.contains(": ")
        && !RESERVED_WORDS.contains(&s.to_ascii_lowercase().as_str())
}

/// Characters written as escapes inside double quotes: controls, DEL, C1 controls,
/// the characters YAML 1.1 treats as line breaks (NEL, LS, PS), the BOM and
/// non-characters. Everything else is printable in both versions.
fn needs_escape(c: char) -> bool {
    let u = c as u32;
    u < 0x20
        || u == 0x7f
        || (0x80..=0x9f).contains(&u)
        || u == 0x2028
        || u == 0x2029
        || u == 0xfeff
        || u == 0xfffe
        || u == 0xffff
}

/// `s` double-quoted with the escapes both YAML versions read the same way.
pub fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if needs_escape(c) => {
                let u = c as u32;
                if u <= 0xff {
                    out.push_str(&format!("\\x{u:02X}"));
                } else {
                    out.push_str(&format!("\\u{u:04X}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One YAML document as a file: the `# ` header line(s), then the tree.
pub fn document(path: impl Into<String>, header: &[String], root: &Node) -> kiln_core::Artifact {
    let mut w = Writer::new();
    for h in header {
        w.line(comment(0, h), &[]);
    }
    write(&mut w, root);
    w.finish(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(root: &Node) -> String {
        document("x.yaml", &[], root).text
    }

    #[test]
    fn nested_shapes() {
        let root = Node::map()
            .with("name", Node::str("web").from(&["/a"]))
            .with("empty", Node::map())
            .with("list", Node::strs(["a", "on"]))
            .with(
                "items",
                Node::seq().item(
                    Node::map()
                        .with("k", Node::int(1))
                        .with("v", Node::map().with("x", Node::bool(true))),
                ),
            )
            .with("text", Node::str("a = 1\nb = 2\n").comment("a file"));
        assert_eq!(
            text(&root),
            "name: web\nempty: {}\nlist:\n  - a\n  - \"on\"\nitems:\n  - k: 1\n    v:\n      x: true\n# a file\ntext: |\n  a = 1\n  b = 2\n"
        );
    }

    #[test]
    fn provenance_is_inherited() {
        let root = Node::map().with(
            "spec",
            Node::map()
                .from(&["/s"])
                .with("replicas", Node::int(3))
                .with("x", Node::int(1).from(&["/x"])),
        );
        let a = document("x.yaml", &[], &root);
        assert_eq!(
            a.lines,
            vec![
                vec!["/s".to_owned()],
                vec!["/s".to_owned()],
                vec!["/x".to_owned()]
            ]
        );
    }

    #[test]
    fn setting_a_key_twice_replaces_it() {
        let root = Node::map().with("a", Node::int(1)).with("a", Node::int(2));
        assert_eq!(text(&root), "a: 2\n");
    }
}
