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

use std::borrow::Cow;

use kiln_core::Pointers;

use crate::Writer;

/// A YAML value with the model pointers behind it and comments to print above it.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    /// JSON pointers into the model; lines of a node without any inherit its parent's.
    /// Shared with the lines written from it (see [`Writer::pointers_of`]).
    pub from: Pointers,
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
    /// Keys are mostly literals: borrowed, not copied.
    Map(Vec<(Key, Node)>),
}

/// A map key.
pub type Key = Cow<'static, str>;

impl Node {
    fn of(value: Value) -> Node {
        Node {
            value,
            from: Pointers::default(),
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
        let new = |i: usize| !pointers[..i].contains(&pointers[i]);
        if self.from.is_empty() && (0..pointers.len()).all(new) {
            self.from = Pointers::new(pointers.iter().map(|p| (*p).to_owned()).collect());
            return self;
        }
        let mut all = self.from.to_vec();
        for p in pointers {
            if !all.iter().any(|q| q == p) {
                all.push((*p).to_owned());
            }
        }
        self.from = Pointers::new(all);
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
    pub fn set(&mut self, key: impl Into<Key>, node: Node) {
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
    pub fn with(mut self, key: impl Into<Key>, node: Node) -> Node {
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

    /// The items of a sequence (none for any other node).
    pub fn into_items(self) -> Vec<Node> {
        match self.value {
            Value::Seq(items) => items,
            _ => Vec::new(),
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
            self.set(key.to_owned(), Node::map());
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
    match &root.value {
        Value::Map(_) | Value::Seq(_) if !root.is_empty() => {
            let from = w.pointers_of(&root.from);
            for c in &root.comments {
                w.line_with(&from, |t| comment(t, 0, c));
            }
            block(w, root, 0, &from, false);
        }
        _ => panic!("a YAML document must be a non-empty map or sequence"),
    }
}

fn comment(out: &mut String, indent: usize, text: &str) {
    pad(out, indent);
    if text.is_empty() {
        out.push('#');
    } else {
        out.push_str("# ");
        out.push_str(text);
    }
}

fn pad(out: &mut String, n: usize) {
    const SPACES: &str = "                                                                ";
    let mut n = n;
    while n > SPACES.len() {
        out.push_str(SPACES);
        n -= SPACES.len();
    }
    out.push_str(&SPACES[..n]);
}

/// The pointers of `node`: its own, or the inherited ones when it has none.
fn node_from(w: &mut Writer, node: &Node, inherited: &Pointers) -> Pointers {
    if node.from.is_empty() {
        inherited.clone()
    } else {
        w.pointers_of(&node.from)
    }
}

/// The entries of a non-empty map or the items of a non-empty sequence, at `indent`.
/// `dash`: the map is an item of a sequence, its first entry line starts with `- `
/// two columns to the left.
fn block(w: &mut Writer, node: &Node, indent: usize, from: &Pointers, dash: bool) {
    match &node.value {
        Value::Map(entries) => {
            for (i, (key, child)) in entries.iter().enumerate() {
                let cfrom = node_from(w, child, from);
                for c in &child.comments {
                    w.line_with(&cfrom, |t| comment(t, indent, c));
                }
                let head = |t: &mut String| {
                    if dash && i == 0 {
                        pad(t, indent - 2);
                        t.push_str("- ");
                    } else {
                        pad(t, indent);
                    }
                    push_scalar(t, key);
                    t.push(':');
                };
                value_after(w, head, child, indent, &cfrom);
            }
        }
        Value::Seq(items) => {
            for child in items {
                let cfrom = node_from(w, child, from);
                for c in &child.comments {
                    w.line_with(&cfrom, |t| comment(t, indent, c));
                }
                match &child.value {
                    // `- first: entry` on one line, the other entries under it.
                    Value::Map(_) if !child.is_empty() => block(w, child, indent + 2, &cfrom, true),
                    _ => value_after(
                        w,
                        |t: &mut String| {
                            pad(t, indent);
                            t.push('-');
                        },
                        child,
                        indent,
                        &cfrom,
                    ),
                }
            }
        }
        _ => unreachable!("block() of a scalar"),
    }
}

/// Writes `child` after `head` (`key:` or `-`), nested blocks below it.
fn value_after(
    w: &mut Writer,
    head: impl FnOnce(&mut String),
    child: &Node,
    indent: usize,
    from: &Pointers,
) {
    match &child.value {
        Value::Map(_) | Value::Seq(_) if child.is_empty() => {
            let empty = if matches!(child.value, Value::Map(_)) {
                " {}"
            } else {
                " []"
            };
            w.line_with(from, |t| {
                head(t);
                t.push_str(empty);
            });
        }
        Value::Map(_) | Value::Seq(_) => {
            w.line_with(from, head);
            block(w, child, indent + 2, from, false);
        }
        Value::Str(s) => match literal_block(s) {
            Some((indicator, body)) => {
                w.line_with(from, |t| {
                    head(t);
                    t.push(' ');
                    t.push_str(indicator);
                });
                for l in body.split('\n') {
                    w.line_with(from, |t| {
                        if !l.is_empty() {
                            pad(t, indent + 2);
                            t.push_str(l);
                        }
                    });
                }
            }
            None => w.line_with(from, |t| {
                head(t);
                t.push(' ');
                push_scalar(t, s);
            }),
        },
        Value::Null => w.line_with(from, |t| {
            head(t);
            t.push_str(" null");
        }),
        Value::Bool(b) => w.line_with(from, |t| {
            head(t);
            t.push_str(if *b { " true" } else { " false" });
        }),
        Value::Int(i) => w.line_with(from, |t| {
            head(t);
            t.push(' ');
            t.push_str(itoa(*i, &mut [0u8; 20]));
        }),
    }
}

/// `i` in decimal, written into `buf`.
fn itoa(i: i64, buf: &mut [u8; 20]) -> &str {
    let mut n = i.unsigned_abs();
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if i < 0 {
        at -= 1;
        buf[at] = b'-';
    }
    std::str::from_utf8(&buf[at..]).expect("ASCII digits")
}

/// Multi-line text as a literal block: the chomping indicator and the lines, when the
/// text survives it unchanged (no trailing spaces, which [`Writer`] trims; no tabs or
/// unprintable characters; no leading space that would confuse indentation detection;
/// at most one final newline).
fn literal_block(s: &str) -> Option<(&'static str, &str)> {
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
    let first = body.split('\n').find(|l| !l.is_empty())?;
    if first.starts_with(' ') || body.split('\n').any(|l| l.ends_with(' ')) {
        return None;
    }
    Some((indicator, body))
}

/// A string as a YAML scalar: plain when [`is_plain_safe`], double-quoted otherwise.
pub fn scalar(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_scalar(&mut out, s);
    out
}

/// Appends `s` as a YAML scalar (see [`scalar`]).
pub fn push_scalar(out: &mut String, s: &str) {
    if is_plain_safe(s) {
        out.push_str(s);
    } else {
        push_double_quoted(out, s);
    }
}

/// Words YAML 1.1 reads as booleans or null (any case is quoted, to be safe).
const RESERVED_WORDS: &[&str] = &["y", "n", "yes", "no", "on", "off", "true", "false", "null"];

/// Bytes allowed in a plain scalar: printable ASCII except `#` and flow indicators.
const PLAIN_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0x20;
    while c < 0x7f {
        t[c] = !matches!(c as u8, b'#' | b',' | b'[' | b']' | b'{' | b'}');
        c += 1;
    }
    t
};

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
    if !first_ok {
        return false;
    }
    // One pass: printable ASCII without `#`, flow indicators or `": "`.
    let mut after_colon = false;
    for &c in b {
        if !PLAIN_BYTE[c as usize] || (after_colon && c == b' ') {
            return false;
        }
        after_colon = c == b':';
    }
    !matches!(b[b.len() - 1], b' ' | b':')
        && (b.len() > 5 || !RESERVED_WORDS.iter().any(|w| w.eq_ignore_ascii_case(s)))
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
    push_double_quoted(&mut out, s);
    out
}

/// Appends `s` double-quoted (see [`double_quoted`]).
pub fn push_double_quoted(out: &mut String, s: &str) {
    use std::fmt::Write as _;
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
                let _ = if u <= 0xff {
                    write!(out, "\\x{u:02X}")
                } else {
                    write!(out, "\\u{u:04X}")
                };
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// One YAML document as a file: the `# ` header line(s), then the tree.
pub fn document(path: impl Into<String>, header: &[String], root: &Node) -> kiln_core::Artifact {
    let mut w = Writer::new();
    let none = Pointers::default();
    for h in header {
        w.line_with(&none, |t| comment(t, 0, h));
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
