//! Small, tolerant scanners for the rendered files a policy receives as artifacts: the YAML
//! that compose and Kubernetes read, and systemd unit files. They keep the 1-based line of
//! everything they find, so a finding can point at it with [`Finding::at_artifact`].
//!
//! They are not full parsers: they read the block-style YAML and the unit files kiln's emitters
//! write (and most hand-written ones), and never fail. What they cannot read they skip.
//!
//! They borrow from the text they read: keys and values are slices of it, copied only when
//! unquoting changes them (escapes, continuation lines). Parse a file once per check and hand
//! the tree to every rule that needs it; [`mentions`] tells, before any parsing, whether a file
//! can hold a key or value at all.
//!
//! ```
//! use kiln_policy_sdk::scan::{yaml, unit};
//!
//! let doc = yaml("services:\n  web:\n    ports:\n      - \"80:80\"\n");
//! let root = doc.root();
//! let web = root.get("services").and_then(|s| s.get("web")).unwrap();
//! let ports: Vec<(&str, u32)> = web.items("ports").map(|p| (p.text(), p.line())).collect();
//! assert_eq!(ports, [("80:80", 4)]);
//!
//! let u = unit("[Service]\nUser=app\nNoNewPrivileges=yes\n");
//! assert_eq!(u.get("Service", "NoNewPrivileges").map(|e| &*e.value), Some("yes"));
//! ```
//!
//! [`Finding::at_artifact`]: crate::Finding::at_artifact

use std::borrow::Cow;

/// Whether `text` can hold a key or value equal to (or containing) `word`, as the scanners read
/// it: `false` only when `word` cannot come out of `text`, so a rule that looks for `word` can
/// skip the file without parsing it. `word` must not contain `'` (a single-quoted `''` reads as
/// one `'`). Escapes and continuation lines need a `\`, so a text with one always mentions
/// everything.
pub fn mentions(text: &str, word: &str) -> bool {
    mentions_any(text, &[word])
}

/// Whether `text` mentions any of `words` (see [`mentions`]).
pub fn mentions_any(text: &str, words: &[&str]) -> bool {
    debug_assert!(words.iter().all(|w| !w.contains('\'')));
    // memchr's searchers, not `str::contains`: std has a SIMD substring search only on x86-64,
    // memchr also on WebAssembly (simd128), where policies run; these scans were a tenth of a
    // module's time.
    let bytes = text.as_bytes();
    words
        .iter()
        .any(|w| memchr::memmem::find(bytes, w.as_bytes()).is_some())
        || memchr::memchr(b'\\', bytes).is_some()
}

/// A YAML document read by [`yaml`]: every node in line order, each knowing where its subtree
/// ends, so reading it allocates once per document (plus unquoted values that differ from
/// their text). [`root`](Yaml::root) is where to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Yaml<'a> {
    /// The root first, then one node per `key: value` or `- item` line, in order.
    nodes: Vec<Slot<'a>>,
    /// The synthetic items of flow sequences (`key: [a, b]`), in order.
    flow: Vec<Slot<'a>>,
}

/// One node of a [`Yaml`] document.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Slot<'a> {
    line: u32,
    /// The index after the node's last descendant.
    end: u32,
    /// The node's flow items: `flow[flow_start..flow_end]`.
    flow_start: u32,
    flow_end: u32,
    item: bool,
    key: Option<Cow<'a, str>>,
    value: Option<Cow<'a, str>>,
}

impl<'a> Slot<'a> {
    fn new(line: u32, item: bool, key: Option<Cow<'a, str>>, value: Option<Cow<'a, str>>) -> Self {
        Slot {
            line,
            end: 0,
            flow_start: 0,
            flow_end: 0,
            item,
            key,
            value,
        }
    }
}

impl<'a> Yaml<'a> {
    /// The document root (line 0): the top-level keys are its children. Several documents
    /// (`---`) share it.
    pub fn root(&self) -> YamlNode<'_> {
        YamlNode {
            doc: self,
            at: 0,
            flow: false,
        }
    }
}

/// One YAML node of a [`Yaml`] document: a `key: value` line, a `- item` line, or the root. A
/// cheap handle (`Copy`) that borrows the document.
#[derive(Clone, Copy)]
pub struct YamlNode<'d> {
    doc: &'d Yaml<'d>,
    at: u32,
    /// A synthetic item of a flow sequence: `at` indexes `doc.flow`.
    flow: bool,
}

impl std::fmt::Debug for YamlNode<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("YamlNode")
            .field("line", &self.line())
            .field("key", &self.key())
            .field("value", &self.value())
            .field("item", &self.is_item())
            .finish()
    }
}

impl<'d> YamlNode<'d> {
    fn slot(self) -> &'d Slot<'d> {
        if self.flow {
            &self.doc.flow[self.at as usize]
        } else {
            &self.doc.nodes[self.at as usize]
        }
    }

    fn node(self, at: u32) -> YamlNode<'d> {
        YamlNode {
            doc: self.doc,
            at,
            flow: self.flow,
        }
    }

    /// 1-based line (0 for the root; a flow sequence's items are on its line).
    pub fn line(self) -> u32 {
        self.slot().line
    }

    /// The key of a `key: value` line, or of the first `key: value` of a `- key: value` item.
    pub fn key(self) -> Option<&'d str> {
        self.slot().key.as_deref()
    }

    /// The scalar after the key (or after `- `), unquoted; `None` when the value is a block
    /// (children on the next lines) or a block scalar (`|`, `>`).
    pub fn value(self) -> Option<&'d str> {
        self.slot().value.as_deref()
    }

    /// Whether the line starts with `- ` (or the node is an element of a flow sequence).
    pub fn is_item(self) -> bool {
        self.slot().item
    }

    /// The scalar value, or `""`.
    pub fn text(self) -> &'d str {
        self.value().unwrap_or("")
    }

    /// The lines nested under this one, in order. For a `- key: value` item: the item's other
    /// keys.
    pub fn children(self) -> impl Iterator<Item = YamlNode<'d>> {
        let end = if self.flow { 0 } else { self.slot().end };
        let mut next = self.at + 1;
        std::iter::from_fn(move || {
            (next < end).then(|| {
                let child = self.node(next);
                next = child.slot().end;
                child
            })
        })
    }

    /// The child with this key. For an item `- name: web`, `get("name")` finds the item's own
    /// first key as well as its other keys.
    pub fn get(self, key: &str) -> Option<YamlNode<'d>> {
        if self.is_item() && self.key() == Some(key) {
            return Some(self);
        }
        self.children()
            .find(|c| !c.is_item() && c.key() == Some(key))
    }

    /// The `key: value` children (a mapping's entries), in order.
    pub fn entries(self) -> impl Iterator<Item = YamlNode<'d>> {
        self.children()
            .filter(|c| !c.is_item() && c.key().is_some())
    }

    /// The `- …` items under `key`, in order; a flow sequence (`key: [a, b]`) gives one
    /// synthetic item per element, on the key's line.
    pub fn items(self, key: &str) -> impl Iterator<Item = YamlNode<'d>> + use<'d> {
        self.get(key).into_iter().flat_map(YamlNode::list)
    }

    /// This node's items (see [`items`](YamlNode::items)).
    pub fn list(self) -> impl Iterator<Item = YamlNode<'d>> {
        let slot = self.slot();
        let flow = if self.flow {
            0..0
        } else {
            slot.flow_start..slot.flow_end
        };
        let doc = self.doc;
        flow.map(move |at| YamlNode {
            doc,
            at,
            flow: true,
        })
        .chain(self.children().filter(|c| c.is_item()))
    }

    /// Every node below this one, depth first (in line order).
    pub fn descendants(self) -> impl Iterator<Item = YamlNode<'d>> {
        let end = if self.flow { 0 } else { self.slot().end };
        (self.at + 1..end).map(move |at| self.node(at))
    }
}

/// The elements of a flow sequence value (`[a, b]`), unquoted, if `value` is one.
fn flow_elements<'a>(value: &Cow<'a, str>) -> Option<Vec<Cow<'a, str>>> {
    let t = trim(value);
    if !(t.starts_with('[') && t.ends_with(']')) {
        return None;
    }
    let start = t.as_ptr() as usize - value.as_ptr() as usize;
    let (a, b) = (start + 1, start + t.len() - 1);
    Some(match value {
        Cow::Borrowed(v) => split_flow(&v[a..b]),
        Cow::Owned(v) => split_flow(&v[a..b])
            .into_iter()
            .map(|e| Cow::Owned(e.into_owned()))
            .collect(),
    })
}

/// Splits the inside of a flow sequence on top-level commas and unquotes each element.
fn split_flow(inner: &str) -> Vec<Cow<'_, str>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quote: Option<u8> = None;
    for (i, b) in inner.bytes().enumerate() {
        match (quote, b) {
            (Some(q), b) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(b),
            (None, b',') => {
                out.push(unquote(&inner[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    let rest = &inner[start..];
    if !rest.trim().is_empty() {
        out.push(unquote(rest));
    }
    out
}

/// `str::trim`, quick when both ends are printable ASCII (what almost every line has).
#[inline]
fn trim(s: &str) -> &str {
    let printable = |c: &u8| (0x21..0x80).contains(c);
    match s.as_bytes() {
        [] => s,
        [first, .., last] if printable(first) && printable(last) => s,
        [only] if printable(only) => s,
        _ => trim_edges(s),
    }
}

#[inline(never)]
fn trim_edges(s: &str) -> &str {
    let b = s.as_bytes();
    let ws = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r');
    let mut start = 0;
    while start < b.len() && ws(b[start]) {
        start += 1;
    }
    let mut end = b.len();
    while end > start && ws(b[end - 1]) {
        end -= 1;
    }
    if start < end && (b[start] >= 0x80 || b[end - 1] >= 0x80) {
        return s.trim();
    }
    &s[start..end]
}

/// The first `b` in `bytes`.
#[inline]
fn find(bytes: &[u8], b: u8) -> Option<usize> {
    memchr::memchr(b, bytes)
}

/// The first `a` or `b` in `bytes`.
#[inline]
fn find2(bytes: &[u8], a: u8, b: u8) -> Option<usize> {
    memchr::memchr2(a, b, bytes)
}

/// A YAML scalar as written (`"a\"b"`, `'it''s'`, `plain # comment`), unquoted. Borrows from
/// `raw` unless unquoting changes the text.
pub fn unquote(raw: &str) -> Cow<'_, str> {
    unquote_trimmed(trim(raw))
}

/// [`unquote`] of a scalar without whitespace around it.
fn unquote_trimmed(raw: &str) -> Cow<'_, str> {
    if let Some(inner) = raw.strip_prefix('"') {
        match find2(inner.as_bytes(), b'"', b'\\') {
            None => return Cow::Borrowed(inner),
            Some(i) if inner.as_bytes()[i] == b'"' => return Cow::Borrowed(&inner[..i]),
            Some(_) => {}
        }
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(other) => out.push(other),
                    None => break,
                },
                c => out.push(c),
            }
        }
        return Cow::Owned(out);
    }
    if let Some(inner) = raw.strip_prefix('\'') {
        match find(inner.as_bytes(), b'\'') {
            None => return Cow::Borrowed(inner),
            Some(i) if inner.as_bytes().get(i + 1) != Some(&b'\'') => {
                return Cow::Borrowed(&inner[..i]);
            }
            Some(_) => {}
        }
        let mut out = String::new();
        let mut chars = inner.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    out.push('\'');
                } else {
                    break;
                }
            } else {
                out.push(c);
            }
        }
        return Cow::Owned(out);
    }
    // A plain scalar ends at ` #`.
    let bytes = raw.as_bytes();
    let mut from = 0;
    while let Some(i) = find(&bytes[from..], b'#') {
        let at = from + i;
        if at > 0 && bytes[at - 1] == b' ' {
            return Cow::Borrowed(trim(&raw[..at - 1]));
        }
        from = at + 1;
    }
    Cow::Borrowed(raw)
}

/// Where `key: value` splits: the first `: ` (or a final `:`) outside quotes. `text` is
/// trimmed.
fn split_key(text: &str) -> Option<(Cow<'_, str>, &str)> {
    let bytes = text.as_bytes();
    if let Some(&q @ (b'"' | b'\'')) = bytes.first() {
        // A quoted key: the quote hides `: ` and ` #` until it closes.
        let mut quote = Some(q);
        for (i, &b) in bytes.iter().enumerate().skip(1) {
            match (quote, b) {
                (Some(q), b) if b == q => quote = None,
                (Some(_), _) => {}
                (None, b'#') if bytes[i - 1] == b' ' => return None,
                (None, b':') if i + 1 == bytes.len() || bytes[i + 1] == b' ' => {
                    return Some((unquote(&text[..i]), trim(&text[i + 1..])));
                }
                _ => {}
            }
        }
        return None;
    }
    let mut from = 0;
    while let Some(p) = find2(&bytes[from..], b':', b'#') {
        let i = from + p;
        if bytes[i] == b':' {
            if i + 1 == bytes.len() || bytes[i + 1] == b' ' {
                // What `unquote` gives for a plain key without ` #` (the loop saw none).
                // (`trim` is quickest without the usual space after the colon.)
                let value = &text[i + 1..];
                let value = value.strip_prefix(' ').unwrap_or(value);
                return Some((Cow::Borrowed(trim(&text[..i])), trim(value)));
            }
        } else if i > 0 && bytes[i - 1] == b' ' {
            return None;
        }
        from = i + 1;
    }
    None
}

/// The number of spaces `line` starts with.
fn indent_of(line: &[u8]) -> usize {
    let mut i = 0;
    while let Some(chunk) = line.get(i..i + 8) {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8])) ^ 0x2020_2020_2020_2020;
        if word != 0 {
            return i + (word.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while line.get(i) == Some(&b' ') {
        i += 1;
    }
    i
}

/// The line that starts at `start`, given that `text[start..from]` holds no line end: where
/// its text ends (before `\n` or `\r\n`, as `str::lines` splits) and where the next one
/// starts.
#[inline]
fn line_end(text: &str, start: usize, from: usize) -> (usize, usize) {
    let bytes = text.as_bytes();
    match find(&bytes[from..], b'\n') {
        Some(n) => {
            let end = from + n;
            let text_end = if end > start && bytes[end - 1] == b'\r' {
                end - 1
            } else {
                end
            };
            (text_end, end + 1)
        }
        None => (bytes.len(), bytes.len()),
    }
}

/// The lines of `text` with their 1-based numbers, split as `str::lines` splits them (at `\n`
/// and `\r\n`), quicker on short lines: line ends are found eight bytes at a time, not by a
/// call of `memchr` each.
///
/// ```
/// use kiln_policy_sdk::scan::lines;
///
/// let numbered: Vec<(u32, &str)> = lines("a\r\n\nb").collect();
/// assert_eq!(numbered, [(1, "a"), (2, ""), (3, "b")]);
/// ```
pub fn lines(text: &str) -> impl Iterator<Item = (u32, &str)> {
    let (mut start, mut number) = (0, 0u32);
    std::iter::from_fn(move || {
        if start >= text.len() {
            return None;
        }
        let (end, next) = line_end(text, start, start);
        let line = &text[start..end];
        start = next;
        number += 1;
        Some((number, line))
    })
}

/// Reads block-style YAML into a [`Yaml`] document. Several documents (`---`) end up under
/// the same root. Never fails.
pub fn yaml(text: &str) -> Yaml<'_> {
    parse(text, None)
}

/// [`yaml`], reading only the nodes on the way to and under `paths`: each path is the keys
/// from the root down, `*` standing for any node (any key, or an item). The other nodes and
/// their subtrees are skipped without reading their keys and values, which makes a large file
/// several times quicker to read when a rule looks at a few blocks of it. What is read is what
/// [`yaml`] reads: a kept node has the same line, key, value and kept children. (More than
/// 64 paths read everything.)
///
/// ```
/// use kiln_policy_sdk::scan::yaml_only;
///
/// let text = "services:\n  web:\n    image: app\n    ports:\n      - \"80:80\"\n";
/// let doc = yaml_only(text, &[&["services", "*", "ports"]]);
/// let web = doc.root().get("services").and_then(|s| s.get("web")).unwrap();
/// assert!(web.get("image").is_none());
/// assert_eq!(web.items("ports").map(|p| p.line()).collect::<Vec<_>>(), [5]);
/// ```
pub fn yaml_only<'a>(text: &'a str, paths: &[&[&str]]) -> Yaml<'a> {
    if paths.len() > 64 {
        return parse(text, None);
    }
    parse(text, Some(paths))
}

/// Which paths of [`yaml_only`] an open node is on (a bit each), or that everything below it
/// is read.
#[derive(Clone, Copy)]
enum Reading {
    All,
    On(u64),
}

fn parse<'a>(text: &'a str, paths: Option<&[&[&str]]>) -> Yaml<'a> {
    // Each open node: its effective indent, its index, and what is read below it. A `- ` item
    // counts half a column deeper than a key at the same column, so `key:` followed by `- a`
    // at the same column still nests the item under the key, and an item's other keys (two
    // columns right of its dash) nest under the item. A node's subtree ends where it closes:
    // at the next node whose effective indent is not deeper.
    let mut doc = Yaml {
        // About one node a line (pruned reading keeps few).
        nodes: Vec::with_capacity(if paths.is_some() {
            64
        } else {
            text.len() / 32 + 1
        }),
        flow: Vec::new(),
    };
    doc.nodes.push(Slot::new(0, false, None, None));
    let root = match paths {
        None => Reading::All,
        Some(paths) => Reading::On(mask(paths.len())),
    };
    let mut stack: Vec<(usize, usize, Reading)> = Vec::new();
    let mut block_scalar: Option<usize> = None;
    // The effective indent of a node left unread: the lines deeper than it are its subtree.
    // (A block scalar inside it is deeper still, and ends where the subtree does.)
    let mut skipping: Option<usize> = None;
    let (mut start, mut number) = (0, 0u32);
    while start < text.len() {
        number += 1;
        let indent = indent_of(&text.as_bytes()[start..]);
        let (end, next) = line_end(text, start, start + indent);
        let body = trim(&text[start + indent..end]);
        start = next;
        if let Some(parent_indent) = block_scalar {
            if body.is_empty() || indent > parent_indent {
                continue;
            }
            block_scalar = None;
        }
        if body.is_empty() || body.starts_with('#') || body == "---" || body == "..." {
            continue;
        }
        let (item, rest, column) = match body
            .strip_prefix("- ")
            .or_else(|| if body == "-" { Some("") } else { None })
        {
            Some(rest) => (true, rest, indent),
            None => (false, body, indent),
        };
        let effective = column * 2 + usize::from(item);
        if let Some(unread) = skipping {
            if effective > unread {
                continue;
            }
            skipping = None;
        }
        let rest = if item { trim(rest) } else { rest };
        let (key, value) = match split_key(rest) {
            Some((k, v)) => (Some(k), v),
            None => (None, rest),
        };
        let here = doc.nodes.len();
        while stack.last().is_some_and(|&(i, _, _)| i >= effective) {
            if let Some((_, open, _)) = stack.pop() {
                doc.nodes[open].end = here as u32;
            }
        }
        let reading = match (stack.last().map_or(root, |&(_, _, r)| r), paths) {
            (Reading::On(on), Some(paths)) => {
                let depth = stack.len();
                let (mut next, mut all) = (0u64, false);
                for (i, path) in paths.iter().enumerate() {
                    let want = path.get(depth).filter(|_| on & (1 << i) != 0);
                    if want.is_some_and(|&want| want == "*" || key.as_deref() == Some(want)) {
                        next |= 1 << i;
                        all |= path.len() == depth + 1;
                    }
                }
                if next == 0 {
                    skipping = Some(effective);
                    continue;
                }
                if all { Reading::All } else { Reading::On(next) }
            }
            _ => Reading::All,
        };
        let value = if value.is_empty() {
            None
        } else if value.starts_with('|') || value.starts_with('>') {
            block_scalar = Some(column + usize::from(item) * 2);
            None
        } else {
            Some(unquote_trimmed(value))
        };
        let mut slot = Slot::new(number, item, key, value);
        let elements = if item {
            None
        } else {
            slot.value.as_ref().and_then(flow_elements)
        };
        if let Some(elements) = elements {
            slot.flow_start = doc.flow.len() as u32;
            for value in elements {
                let mut element = Slot::new(number, true, None, Some(value));
                element.end = doc.flow.len() as u32 + 1;
                doc.flow.push(element);
            }
            slot.flow_end = doc.flow.len() as u32;
        }
        doc.nodes.push(slot);
        stack.push((effective, here, reading));
    }
    let end = doc.nodes.len() as u32;
    for (_, open, _) in stack {
        doc.nodes[open].end = end;
    }
    doc.nodes[0].end = end;
    doc
}

/// The lowest `n` bits.
fn mask(n: usize) -> u64 {
    if n >= 64 { u64::MAX } else { (1 << n) - 1 }
}

/// One `Key=value` line of a unit file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitEntry<'a> {
    pub key: &'a str,
    /// The value with continuation lines (`\` at the end) joined by a space.
    pub value: Cow<'a, str>,
    /// 1-based line of the key.
    pub line: u32,
}

/// One `[Section]` of a unit file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitSection<'a> {
    pub name: &'a str,
    /// 1-based line of the `[Section]` header.
    pub line: u32,
    pub entries: Vec<UnitEntry<'a>>,
}

/// A systemd unit file (`.service`, `.socket`, `.target` …), section by section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Unit<'a> {
    pub sections: Vec<UnitSection<'a>>,
}

impl<'a> Unit<'a> {
    /// The section with this name.
    pub fn section(&self, name: &str) -> Option<&UnitSection<'a>> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// The last entry `key` of section `section` (the one systemd uses for most settings).
    pub fn get(&self, section: &str, key: &str) -> Option<&UnitEntry<'a>> {
        self.section(section)?
            .entries
            .iter()
            .rev()
            .find(|e| e.key == key)
    }

    /// Every entry `key` of section `section`, in order (`Environment=` may repeat).
    pub fn all<'u>(
        &'u self,
        section: &str,
        key: &'u str,
    ) -> impl Iterator<Item = &'u UnitEntry<'a>> + use<'u, 'a> {
        self.section(section)
            .into_iter()
            .flat_map(move |s| s.entries.iter().filter(move |e| e.key == key))
    }
}

/// Reads a systemd unit file. Never fails; lines it cannot read are skipped.
pub fn unit(text: &str) -> Unit<'_> {
    let mut unit = Unit::default();
    let mut pending: Option<UnitEntry> = None;
    let (mut start, mut number) = (0, 0u32);
    while start < text.len() {
        number += 1;
        let (end, next) = line_end(text, start, start);
        let body = trim(&text[start..end]);
        start = next;
        if let Some(mut entry) = pending.take() {
            let (part, more) = match body.strip_suffix('\\') {
                Some(p) => (trim(p), true),
                None => (body, false),
            };
            if !(body.starts_with('#') || body.starts_with(';') || part.is_empty()) {
                if entry.value.is_empty() {
                    entry.value = Cow::Borrowed(part);
                } else {
                    if let Cow::Borrowed(first) = entry.value {
                        // Room for the lines that usually follow (`ExecStart=` arguments).
                        let mut value = String::with_capacity(first.len() + part.len() + 256);
                        value.push_str(first);
                        entry.value = Cow::Owned(value);
                    }
                    let value = entry.value.to_mut();
                    value.push(' ');
                    value.push_str(part);
                }
            }
            if more {
                pending = Some(entry);
            } else if let Some(s) = unit.sections.last_mut() {
                s.entries.push(entry);
            }
            continue;
        }
        if body.is_empty() || body.starts_with('#') || body.starts_with(';') {
            continue;
        }
        if body.starts_with('[') && body.ends_with(']') {
            unit.sections.push(UnitSection {
                name: &body[1..body.len() - 1],
                line: number,
                // Room for a `[Service]` section without growing several times.
                entries: Vec::with_capacity(32),
            });
            continue;
        }
        let Some(eq) = find(body.as_bytes(), b'=') else {
            continue;
        };
        let (key, value) = (&body[..eq], &body[eq + 1..]);
        let (value, more) = match trim(value).strip_suffix('\\') {
            Some(v) => (trim(v), true),
            None => (trim(value), false),
        };
        let entry = UnitEntry {
            key: trim(key),
            value: Cow::Borrowed(value),
            line: number,
        };
        if more {
            pending = Some(entry);
        } else if let Some(s) = unit.sections.last_mut() {
            s.entries.push(entry);
        }
    }
    if let (Some(entry), Some(s)) = (pending, unit.sections.last_mut()) {
        s.entries.push(entry);
    }
    unit
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMPOSE: &str = r#"# generated
name: demo
services:
  web:
    image: ghcr.io/demo/api:1.0
    environment:
      DEBUG: "false"
      NAME: 'it''s' # a comment
    command:
      - sh
      - -c
      - |
        exec thing --port 1
        more: not a key
    security_opt: ["no-new-privileges:true"]
  nginx:
    ports:
    - "80:80"
    - target: 443
      published: 443
      host_ip: 127.0.0.1
networks:
  data:
    internal: true
"#;

    #[test]
    fn yaml_maps_lists_and_lines() {
        let doc = yaml(COMPOSE);
        let doc = doc.root();
        let services = doc.get("services").unwrap();
        let names: Vec<&str> = services.entries().map(|s| s.key().unwrap()).collect();
        assert_eq!(names, ["web", "nginx"]);
        let web = services.get("web").unwrap();
        assert_eq!(web.line(), 4);
        let env: Vec<(&str, &str)> = web
            .get("environment")
            .unwrap()
            .entries()
            .map(|e| (e.key().unwrap(), e.text()))
            .collect();
        assert_eq!(env, [("DEBUG", "false"), ("NAME", "it's")]);
        let cmd: Vec<String> = web.items("command").map(|i| i.text().to_owned()).collect();
        assert_eq!(cmd, ["sh", "-c", ""]);
        let opts: Vec<String> = web
            .items("security_opt")
            .map(|i| i.text().to_owned())
            .collect();
        assert_eq!(opts, ["no-new-privileges:true"]);

        let nginx = services.get("nginx").unwrap();
        let ports: Vec<_> = nginx.items("ports").collect();
        assert_eq!(ports.len(), 2);
        assert_eq!((ports[0].text(), ports[0].line()), ("80:80", 18));
        assert_eq!(ports[1].get("target").unwrap().text(), "443");
        assert_eq!(ports[1].get("host_ip").unwrap().text(), "127.0.0.1");
        assert_eq!(ports[1].get("published").unwrap().line(), 20);
        assert_eq!(
            doc.get("networks")
                .and_then(|n| n.get("data"))
                .and_then(|d| d.get("internal"))
                .map(YamlNode::text),
            Some("true")
        );
    }

    #[test]
    fn yaml_k8s_containers() {
        let text = "kind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: web\n          env:\n            - name: A\n              value: \"1\"\n          securityContext:\n            allowPrivilegeEscalation: false\n        - name: side\n          image: x\n";
        let doc = yaml(text);
        let doc = doc.root();
        let containers: Vec<_> = doc
            .get("spec")
            .and_then(|s| s.get("template"))
            .and_then(|t| t.get("spec"))
            .unwrap()
            .items("containers")
            .collect();
        assert_eq!(containers.len(), 2);
        assert_eq!(containers[0].get("name").unwrap().text(), "web");
        assert_eq!(containers[0].line(), 6);
        let ape = containers[0]
            .get("securityContext")
            .and_then(|s| s.get("allowPrivilegeEscalation"))
            .unwrap();
        assert_eq!((ape.text(), ape.line()), ("false", 11));
        let env: Vec<_> = containers[0].items("env").collect();
        assert_eq!(env[0].get("value").unwrap().text(), "1");
        assert!(containers[1].get("securityContext").is_none());
        assert_eq!(doc.descendants().count(), 13);
    }

    #[test]
    fn yaml_never_fails_on_odd_input() {
        for text in [
            "",
            ":",
            "- - -",
            "a: [b, 'c, d', \"e\"]",
            "\t\tweird: : :",
            "a:\n  - \n  -",
        ] {
            let _ = yaml(text);
        }
        let doc = yaml("a: [b, 'c, d', \"e\"]");
        let doc = doc.root();
        let items: Vec<String> = doc.items("a").map(|i| i.text().to_owned()).collect();
        assert_eq!(items, ["b", "c, d", "e"]);
    }

    /// The nodes of a tree, depth first: (depth, line, key, value, item).
    fn dump(node: YamlNode, depth: usize, out: &mut Vec<(usize, u32, String, String, bool)>) {
        for c in node.children() {
            out.push((
                depth,
                c.line(),
                c.key().unwrap_or("~").to_owned(),
                c.text().to_owned(),
                c.is_item(),
            ));
            dump(c, depth + 1, out);
        }
    }

    #[test]
    fn yaml_only_reads_the_paths_and_skips_the_rest() {
        let doc = yaml_only(COMPOSE, &[&["services", "*", "environment"]]);
        let services = doc.root().get("services").unwrap();
        let web = services.get("web").unwrap();
        assert!(web.get("image").is_none() && web.get("command").is_none());
        let env: Vec<(&str, &str, u32)> = web
            .get("environment")
            .unwrap()
            .entries()
            .map(|e| (e.key().unwrap(), e.text(), e.line()))
            .collect();
        assert_eq!(env, [("DEBUG", "false", 7), ("NAME", "it's", 8)]);
        assert_eq!(services.get("nginx").map(|n| n.line()), Some(16));
        assert!(doc.root().get("networks").is_none() && doc.root().get("name").is_none());

        // What is kept is what `yaml` reads, skipped subtrees (block scalars too) included.
        let text = "a:\n  b: |\n    c: 1\n  x: 2\n  d:\n    - e: |\n        f: 3\n      g: 4\n    - h\nb: 5\n";
        for paths in [
            &[&["a", "d", "*"][..]][..],
            &[&["a", "*"][..], &["b"][..]][..],
            &[&["*", "x"][..]][..],
        ] {
            let (mut kept, mut all) = (Vec::new(), Vec::new());
            dump(yaml_only(text, paths).root(), 0, &mut kept);
            dump(yaml(text).root(), 0, &mut all);
            assert!(kept.iter().all(|n| all.contains(n)), "{paths:?}: {kept:?}");
        }
        let mut kept = Vec::new();
        dump(yaml_only(text, &[&["a", "*"]]).root(), 0, &mut kept);
        let lines: Vec<u32> = kept.iter().map(|n| n.1).collect();
        assert_eq!(lines, [1, 2, 4, 5, 6, 8, 9]);
        assert!(yaml_only(text, &[]).root().children().next().is_none());
    }

    #[test]
    fn mentions_rules_out_only_what_cannot_be_there() {
        assert!(mentions("a:\n  services:\n", "services"));
        assert!(!mentions("a:\n  service: x\n", "services"));
        assert!(mentions("\"ser\\vices\": x\n", "services"));
        assert!(mentions_any("kind: Service\n", &["NodePort", "Service"]));
        assert!(!mentions_any(
            &"x: y\n".repeat(20),
            &["NodePort", "hostPort"]
        ));
        assert!(mentions(&format!("{}\\", "x".repeat(100)), "anything"));
    }

    #[test]
    fn lines_split_as_str_lines() {
        for text in [
            "",
            "a",
            "a\n",
            "a\r\nb\r\n",
            "\n\n",
            "a\rb\n\r",
            "x\r",
            "long line with many bytes in it\n\r\nshort\n",
            "é\nü\r\n",
        ] {
            let ours: Vec<(u32, &str)> = lines(text).collect();
            let std: Vec<(u32, &str)> = (1..).zip(text.lines()).collect();
            assert_eq!(ours, std, "{text:?}");
        }
    }

    #[test]
    fn byte_searches_find_the_first() {
        let text = "abc: def # ghi\n  jkl: \"mno\"\\ pqr\n:#".repeat(3);
        for start in 0..text.len() {
            for end in start..=text.len().min(start + 40) {
                let part = &text.as_bytes()[start..end];
                for (a, b) in [(b':', b'#'), (b'\n', b'\n'), (b'"', b'\\'), (b'z', b'q')] {
                    let naive = part.iter().position(|&c| c == a || c == b);
                    assert_eq!(find2(part, a, b), naive);
                    assert_eq!(find(part, a), part.iter().position(|&c| c == a));
                }
            }
        }
    }

    #[test]
    fn unquote_borrows_unless_it_changes_the_text() {
        assert!(matches!(unquote("  plain # c"), Cow::Borrowed("plain")));
        assert!(matches!(
            unquote("\"quoted\" rest"),
            Cow::Borrowed("quoted")
        ));
        assert!(matches!(unquote("'it' x"), Cow::Borrowed("it")));
        assert_eq!(unquote("\"a\\\"b\\n\""), "a\"b\n");
        assert_eq!(unquote("'it''s'"), "it's");
        assert_eq!(unquote("a#b #c"), "a#b");
        assert_eq!(unquote("\"open"), "open");
    }

    #[test]
    fn unit_sections_and_continuations() {
        let u = unit(
            "# head\n[Unit]\nDescription=x\n\n[Service]\nEnvironment=\"A=1\"\nEnvironment=B=2\nExecStart=/bin/app \\\n    --flag \\\n    --other\nNoNewPrivileges=yes\n",
        );
        assert_eq!(u.sections.len(), 2);
        assert_eq!(u.section("Service").unwrap().line, 5);
        let envs: Vec<(&str, u32)> = u
            .all("Service", "Environment")
            .map(|e| (&*e.value, e.line))
            .collect();
        assert_eq!(envs, [("\"A=1\"", 6), ("B=2", 7)]);
        let exec = u.get("Service", "ExecStart").unwrap();
        assert_eq!((&*exec.value, exec.line), ("/bin/app --flag --other", 8));
        assert_eq!(u.get("Service", "NoNewPrivileges").unwrap().line, 11);
        assert!(u.get("Unit", "NoNewPrivileges").is_none());
    }
}
